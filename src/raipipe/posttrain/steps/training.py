"""The training steps: the auxiliary reward model, then the policy optimiser (DPO on pairs, or GRPO on a
combined reward). Light evaluation runs inside training: a probe of harmful prompts and their benign
look-alikes answered every `eval_every` steps, written as curves next to the checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from raipipe.judges.llm_judge import RubricJudge
from raipipe.judges.refusal import FeatureRefusalJudge
from raipipe.posttrain.dpo import train_dpo
from raipipe.posttrain.grpo import train_grpo
from raipipe.posttrain.pair_selection import training_pairs, weight_pairs
from raipipe.posttrain.reason_pairs import reason_pairs
from raipipe.posttrain.refusal_templates import load_templates
from raipipe.posttrain.resumable import stable_dump
from raipipe.posttrain.reward import CombinedReward
from raipipe.posttrain.reward_ablation import RewardAblation, reward_ablation
from raipipe.posttrain.reward_model import RewardModelScorer, chance_warning, train_reward_model
from raipipe.posttrain.sample import trainable_records
from raipipe.posttrain.steps.base import Step, StepContext, StepOutput
from raipipe.posttrain.steps.data import PairsOutput, load_pairs

console = Console(stderr=True)


class RewardModelOutput(StepOutput):
    directory: Path | None = None
    metrics: dict[str, Any] | None = None


class TrainOutput(StepOutput):
    algorithm: str
    run_dir: Path
    steps: int
    checkpoints: list[int]


class RewardModelStep(Step):
    """The Bradley–Terry reward model on decisive pairs, scored on the held-out ones (skipped when off)."""

    name = "reward-model"
    inputs = (PairsOutput,)
    output = RewardModelOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        cfg = ctx.config
        return {"train_reward_model": cfg.train_reward_model, "decisive_only": cfg.decisive_only,
                "reward_model": cfg.reward_model.model_dump(mode="json", exclude={"output_dir", "overwrite"})}

    def run(self, ctx: StepContext) -> RewardModelOutput:
        if not ctx.config.train_reward_model:
            return RewardModelOutput()
        target = ctx.out / "reward_model"
        train, heldout = load_pairs(ctx)
        cfg = ctx.config.reward_model.model_copy(update={"output_dir": target, "overwrite": True})
        result = train_reward_model(training_pairs(train, ctx.config.decisive_only),
                                    training_pairs(heldout, ctx.config.decisive_only), cfg,
                                    lineage={"policy_pack": ctx.pack.ref, "policy_versions": ctx.pack.versions()})
        by_label = "; ".join(f"{k} {v.fmt()}" for k, v in result.heldout_accuracy_by_label.items())
        console.print(f"reward model: held-out pairwise accuracy {result.heldout_accuracy.fmt()} ({by_label})")
        if warning := chance_warning(result.heldout_accuracy_by_label):
            console.print(f"[yellow]warning:[/] {warning}")
        return RewardModelOutput(directory=target, metrics=json.loads((target / "metrics.json").read_text()))


def dpo_pairs(config, pairs: list) -> list:
    """The pairs `pair_strategy` and `add_clearest` pick, plus reason pairs if asked, repeated by `pair_weights`.
    The reward model's held-out prompts are used too: they are training-split prompts, held out only to score
    the reward model."""
    kept = training_pairs(pairs, config.decisive_only, config.pair_strategy, config.add_clearest)
    if config.reason_pairs:
        kept += reason_pairs(pairs, load_templates(config.sample.refusal_templates)[0])
    return weight_pairs(kept, config.pair_weights)


class TrainStep(Step):
    """DPO or GRPO with LoRA from the parent model, probing both sides as it trains; checkpoints in OUT/ALGO."""

    name = "train"
    inputs = (PairsOutput, RewardModelOutput)
    output = TrainOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        cfg = ctx.config
        common = {"algorithm": cfg.algorithm, "model": cfg.model, "probe": cfg.probe.model_dump(mode="json")}
        if cfg.algorithm == "dpo":
            return common | {"dpo": stable_dump(cfg.dpo, exclude={"output_dir", "overwrite", "model"}),
                             "pair_strategy": cfg.pair_strategy, "decisive_only": cfg.decisive_only,
                             "add_clearest": cfg.add_clearest, "pair_weights": cfg.pair_weights,
                             **({"reason_pairs": True} if cfg.reason_pairs else {})}
        return common | {"grpo": cfg.grpo.model_dump(mode="json", exclude={"output_dir", "overwrite", "model"}),
                         "reward": cfg.reward.model_dump(mode="json"), "judge_model": cfg.rank.judge_model,
                         "prompts": [cfg.sample.dataset, cfg.sample.limit, cfg.sample.seed], "policy": ctx.pack.digest,
                         # the reward-model check reads the held-out pairs with the evaluation judge
                         "reward_check": [cfg.decisive_only, cfg.select.judge, cfg.select.judge_model,
                                          cfg.select.judge_options] if cfg.reward.check_reward_model else None}

    def digest_inputs(self, ctx: StepContext) -> tuple[type[StepOutput], ...]:
        # DPO learns from the pairs alone; GRPO from prompts scored by the reward model (which covers the
        # held-out pairs its check reads)
        return (PairsOutput,) if ctx.config.algorithm == "dpo" else (RewardModelOutput,)

    def run(self, ctx: StepContext) -> TrainOutput:
        from raipipe.posttrain.probe import ProbeSet  # lazy: probe imports transformers

        cfg = ctx.config
        probe = ProbeSet.from_seed(n_pairs=cfg.probe.n_pairs, split=cfg.probe.split)
        target = ctx.out / cfg.algorithm
        if cfg.algorithm == "dpo":
            train, heldout = load_pairs(ctx)
            settings = cfg.dpo.model_copy(update={"output_dir": target, "model": cfg.model, "overwrite": True})
            result = train_dpo(dpo_pairs(cfg, train + heldout), settings, probe=probe)
        else:
            result = self._grpo(ctx, target, probe)
        (target / "train_result.json").write_text(result.model_dump_json(indent=2))
        return TrainOutput(algorithm=cfg.algorithm, run_dir=target, steps=result.steps,
                           checkpoints=[step for step, _ in result.checkpoints])

    @staticmethod
    def _grpo(ctx: StepContext, target: Path, probe):
        cfg = ctx.config
        rm_dir = ctx.get(RewardModelOutput).directory
        scorer = RewardModelScorer(rm_dir) if rm_dir else None
        rubric = None
        if cfg.rank.judge_model:
            rubric = RubricJudge(model=cfg.rank.judge_model)
        ranker = FeatureRefusalJudge()
        ablation = ablate_reward_model(cfg, load_pairs(ctx)[1], scorer, ranker) if scorer is not None else None
        reward_cfg = cfg.reward
        if ablation is not None and cfg.reward.check_reward_model and ablation.hurts():
            reward_cfg = cfg.reward.model_copy(update={"reward_model_weight": 0.0})
            console.print("[yellow]warning:[/] the reward model orders the held-out pairs worse than the combined "
                          "reward without it; GRPO trains with reward_model_weight 0 (reward.check_reward_model)")
        reward = CombinedReward(reward_cfg, scorer, rubric, ranker, pack=ctx.pack)
        records = trainable_records(cfg.sample.dataset, cfg.sample.limit, cfg.sample.seed)
        settings = cfg.grpo.model_copy(update={"output_dir": target, "model": cfg.model, "overwrite": True})
        extra = {"reward": reward.lineage(),
                 "reward_ablation": ablation.model_dump(mode="json") if ablation is not None else None}
        result = train_grpo(records, [reward.as_trl_reward_func()], settings, probe=probe, lineage_extra=extra)
        if ablation is not None:
            (target / "reward_ablation.json").write_text(ablation.model_dump_json(indent=2), encoding="utf-8")
        return result


def ablate_reward_model(config, heldout: list, scorer: RewardModelScorer, ranker=None,
                        weights: tuple[float, ...] | None = None) -> RewardAblation | None:
    """The combined reward on the decisive held-out pairs at each reward-model weight (default: 0 and the
    configured one; the first is the reference of the paired test) against the evaluation judge; None when no
    weight is above 0 or no pair is held out."""
    weights = weights or (0.0, config.reward.reward_model_weight)
    pairs = training_pairs(heldout, config.decisive_only)
    if max(weights) <= 0 or not pairs:
        return None
    ablation = reward_ablation(pairs, scorer, ranker or FeatureRefusalJudge(), config.select.build_judge(),
                               config.reward, weights=weights)
    off, on = ablation.rows[0].agrees_with_grader, ablation.rows[-1].agrees_with_grader
    console.print(f"combined reward on held-out pairs, order as {ablation.grader} orders them: reward-model weight "
                  f"{weights[0]:g} {off.fmt()}, weight {weights[-1]:g} {on.fmt()}")
    return ablation
