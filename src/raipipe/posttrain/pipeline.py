"""`raipipe posttrain`: sample → rank → pairs → reward model → DPO/GRPO (+ probes) → select → export.

Each step leaves its output under `config.out` and is skipped when that output is complete, so an
interrupted run resumes: sampling and ranking resume item by item through the store, training
resumes from the finished artifact, evaluation through the response cache."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from raipipe.models import load_model
from raipipe.policy.loader import load_pack
from raipipe.posttrain.config import PostTrainConfig
from raipipe.store.db import open_store

console = Console(stderr=True)


class NeedsHumanRankings(RuntimeError):
    """Human mode and not enough prompts ranked yet: serve the ranking page, then rerun."""


def _done(path: Path) -> bool:
    return path.exists()


class PostTrainPipeline:
    def __init__(self, config: PostTrainConfig):
        self.config = config
        self.out = Path(config.out)
        self.sessions = open_store(config.store_url)
        self.pack = load_pack(config.dpo.policy_pack)
        self.out.mkdir(parents=True, exist_ok=True)
        config.save(self.out / "config.yaml")

    # -- steps ------------------------------------------------------------------------------------
    def sample(self) -> str:
        from raipipe.posttrain.sample import sample_candidates

        model = load_model(self.config.model)
        try:
            batch_id = sample_candidates(model, self.config.sample, self.sessions, self.pack)
        finally:
            model.close()
        (self.out / "batch_id").write_text(batch_id)
        return batch_id

    def rank(self, batch_id: str) -> None:
        from sqlalchemy import func, select

        from raipipe.store.posttrain_tables import Candidate, Ranking

        rank = self.config.rank
        if rank.mode == "ai":
            from raipipe.posttrain.ranking.ai_feedback import ai_rank

            rubric = None
            if rank.judge_model:
                from raipipe.judges.llm_judge import RubricJudge

                rubric = RubricJudge(model=rank.judge_model)
            report = ai_rank(self.sessions, batch_id, rubric_judge=rubric, pack=self.pack, only_missing=True)
            console.print(f"AI feedback (labelled rater_kind=ai): {report}")
            return
        if rank.mode == "import":
            from raipipe.posttrain.ranking.jsonl import import_jsonl

            if not rank.import_file:
                raise ValueError("rank.mode=import needs rank.import_file")
            console.print(import_jsonl(self.sessions, rank.import_file))
        with self.sessions() as s:
            prompts = s.scalar(select(func.count(func.distinct(Candidate.record_id)))
                               .where(Candidate.batch_id == batch_id))
            ranked = s.scalar(select(func.count(func.distinct(Ranking.record_id))).where(
                Ranking.batch_id == batch_id, Ranking.rater_kind == "human"))
        if not prompts or ranked / prompts < rank.min_ranked_share:
            raise NeedsHumanRankings(
                f"{ranked} of {prompts} prompts of batch {batch_id} have human rankings (need "
                f"{rank.min_ranked_share:.0%}): run `raipipe rank serve --store {self.config.store_url} "
                f"--batch {batch_id}`, rank in the browser, then rerun this command.")

    def pairs(self, batch_id: str):
        from raipipe.posttrain.pairs import load_pair_dataset, pairs_from_store, save_pair_dataset, split_pairs

        target = self.out / "pairs"
        if _done(target / "lineage.json"):
            train, heldout, _ = load_pair_dataset(target)
            return train, heldout
        pairset = pairs_from_store(self.sessions, batch_id)
        train, heldout = split_pairs(pairset.pairs, heldout_fraction=self.config.heldout_fraction,
                                     seed=self.config.sample.seed)
        save_pair_dataset(target, train, heldout, {"pair_stats": pairset.stats.model_dump(mode="json"),
                                                   "policy_pack": self.pack.ref,
                                                   "policy_versions": self.pack.versions()})
        console.print(f"pairs: {len(train)} train, {len(heldout)} held out ({pairset.stats})")
        return train, heldout

    def reward_model(self, train, heldout):
        from raipipe.posttrain.pair_selection import training_pairs
        from raipipe.posttrain.reward_model import train_reward_model

        target = self.out / "reward_model"
        if not self.config.train_reward_model:
            return None
        if _done(target / "metrics.json"):
            return json.loads((target / "metrics.json").read_text())
        cfg = self.config.reward_model.model_copy(update={"output_dir": target})
        train = training_pairs(train, self.config.decisive_only)
        heldout = training_pairs(heldout, self.config.decisive_only)
        result = train_reward_model(train, heldout, cfg, lineage={"policy_pack": self.pack.ref,
                                                                  "policy_versions": self.pack.versions()})
        console.print(f"reward model: held-out pairwise accuracy {result.heldout_accuracy.fmt()}")
        return json.loads((target / "metrics.json").read_text())

    def dpo_pairs(self, pairs: list) -> list:
        """The pairs `pair_strategy` and `add_clearest` pick, repeated by `pair_weights`. The reward model's
        held-out prompts are used too: they are training-split prompts, held out only to score the reward model."""
        from raipipe.posttrain.pair_selection import training_pairs, weight_pairs

        kept = training_pairs(pairs, self.config.decisive_only, self.config.pair_strategy, self.config.add_clearest)
        return weight_pairs(kept, self.config.pair_weights)

    def optimise(self, pairs) -> Path:
        from raipipe.posttrain.probe import ProbeSet

        probe = ProbeSet.from_seed(n_pairs=self.config.probe.n_pairs, split=self.config.probe.split)
        if self.config.algorithm == "dpo":
            from raipipe.posttrain.dpo import train_dpo

            target = self.out / "dpo"
            if not _done(target / "train_result.json"):
                settings = self.config.dpo.model_copy(update={"output_dir": target, "model": self.config.model,
                                                              "overwrite": True})
                result = train_dpo(self.dpo_pairs(pairs), settings, probe=probe)
                (target / "train_result.json").write_text(result.model_dump_json(indent=2))
            return target
        return self._grpo(probe)

    def _grpo(self, probe) -> Path:
        from raipipe.judges.refusal import FeatureRefusalJudge
        from raipipe.posttrain.grpo import train_grpo
        from raipipe.posttrain.reward import CombinedReward
        from raipipe.posttrain.reward_model import RewardModelScorer
        from raipipe.posttrain.sample import trainable_records

        target = self.out / "grpo"
        if _done(target / "train_result.json"):
            return target
        rm_dir = self.out / "reward_model"
        scorer = RewardModelScorer(rm_dir) if (rm_dir / "metrics.json").exists() else None
        rubric = None
        if self.config.rank.judge_model:
            from raipipe.judges.llm_judge import RubricJudge

            rubric = RubricJudge(model=self.config.rank.judge_model)
        reward = CombinedReward(self.config.reward, scorer, rubric, FeatureRefusalJudge(), pack=self.pack)
        records = trainable_records(self.config.sample.dataset, self.config.sample.limit, self.config.sample.seed)
        settings = self.config.grpo.model_copy(update={"output_dir": target, "model": self.config.model,
                                                       "overwrite": True})
        result = train_grpo(records, [reward.as_trl_reward_func()], settings, probe=probe)
        (target / "train_result.json").write_text(result.model_dump_json(indent=2))
        return target

    def select(self, run_dir: Path):
        from raipipe.posttrain.select import Selection, select_checkpoint

        path = self.out / "selection.json"
        if _done(path):
            return Selection.model_validate_json(path.read_text())
        sel = self.config.select
        return select_checkpoint(run_dir, datasets=sel.datasets, out=path, rule=sel.rule, **self._eval_args())

    def _eval_args(self) -> dict:
        """How selection and confirmation evaluate: same baseline, store, judge, token budget and limit."""
        from raipipe.judges.refusal import FeatureRefusalJudge
        from raipipe.models.base import GenerationParams

        sel = self.config.select
        # the ranking judge scores the same answers too, so the report shows how far the two judges agree
        return {"baseline_model": self.config.model, "store": self.config.store_url, "judge": sel.build_judge(),
                "second_judge": FeatureRefusalJudge(), "params": GenerationParams(max_new_tokens=sel.max_new_tokens),
                "limit": sel.limit}

    def confirm(self, selection, run_dir: Path):
        """Baseline and chosen checkpoint on `select.confirm_datasets` (None when none are configured)."""
        from raipipe.posttrain.confirm import Confirmation, confirm_selection

        sel = self.config.select
        if not sel.confirm_datasets:
            return None
        path = self.out / "confirmation.json"
        if _done(path):
            return Confirmation.model_validate_json(path.read_text())
        return confirm_selection(selection, run_dir, sel.confirm_datasets, out=path, **self._eval_args())

    def export(self, selection, run_dir: Path) -> Path | None:
        from raipipe.posttrain.export import export_checkpoint

        if selection.kept_baseline:
            console.print("[yellow]no checkpoint met the selection rule: the baseline is kept, nothing exported[/]")
            return None
        target = self.out / "model"
        if not _done(target / "merged" / "config.json"):
            export_checkpoint(run_dir / selection.chosen, target, overwrite=True)
        return target

    # -- all of it ----------------------------------------------------------------------------------
    def run(self) -> dict:
        if self.config.select.confirm_datasets:  # fail before an hour of work, not after it
            from raipipe.posttrain.confirm import check_disjoint

            check_disjoint(self.config.select.datasets, self.config.select.confirm_datasets)
        batch_id = self.sample()
        self.rank(batch_id)
        train, heldout = self.pairs(batch_id)
        rm = self.reward_model(train, heldout)
        run_dir = self.optimise(train + heldout)
        selection = self.select(run_dir)
        confirmation = self.confirm(selection, run_dir)
        model_dir = self.export(selection, run_dir)
        from raipipe.posttrain.report import write_posttrain_report

        return write_posttrain_report(self, batch_id, rm, run_dir, selection, model_dir, confirmation)
