"""Online GRPO with TRL + LoRA on CPU: the policy samples a group of answers per prompt, a reward
function scores them, and answers better than their group's mean are reinforced.

Any TRL reward function works (`f(prompts, completions, **columns) -> list[float | None]`); the
dataset's extra columns (label, policy_id, record_id, pillar, language) reach it as keyword lists.
`frac_reward_zero_std` — the share of groups where every answer got the same reward, which carry no
learning signal — is logged every step: when it stays near 1 the reward is too coarse to train on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raipipe.data.io import assert_trainable, dataset_hash
from raipipe.data.records import PromptRecord, Split
from raipipe.posttrain.lora import (
    DEFAULT_MODEL,
    LoraSettings,
    TrainResult,
    as_probe_callback,
    build_lineage,
    cpu_trainer_args,
    lineage_callback,
    load_base,
    prepare_output_dir,
    resolve_model,
    rows_hash,
    run_and_record,
    write_json,
)
from raipipe.posttrain.trl_compat import check_trl_version, cpu_compact_head, reward_func_names

RewardFunc = Callable[..., list[float | None]]


class GRPOSettings(BaseModel):
    """Everything that determines a GRPO run; saved next to its checkpoints."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(default=DEFAULT_MODEL, description="parent model: embedded:NAME, hf:DIR or hf:BASE+ADAPTER")
    output_dir: Path = Field(default=Path("out/posttrain/grpo"), description="checkpoints, lineage, curves")
    overwrite: bool = Field(default=False, description="replace checkpoints already in output_dir")
    num_generations: int = Field(default=4, ge=2, description="answers sampled per prompt (the group)")
    max_completion_length: int = Field(default=48, ge=1, description="tokens per sampled answer (32–96 on CPU)")
    temperature: float = Field(default=0.9, gt=0.0, description="sampling temperature of the group")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="nucleus sampling of the group")
    learning_rate: float = Field(default=2e-5, gt=0.0, description="AdamW learning rate")
    epochs: float = Field(default=1.0, gt=0.0, description="passes over the prompts (ignored when max_steps > 0)")
    max_steps: int = Field(default=50, description="optimizer steps; > 0 overrides epochs")
    batch_size: int = Field(default=4, ge=1,
                            description="completions per device per step (prompts per step = this / num_generations)")
    grad_accum: int = Field(default=1, ge=1, description="gradient accumulation steps")
    beta: float = Field(default=0.04, ge=0.0, description="KL penalty to the reference (adapter off); 0 disables")
    loss_type: str = Field(default="dapo", description="TRL GRPO loss: dapo, grpo, dr_grpo, bnpo, ...")
    scale_rewards: Literal["group", "batch", "none"] = Field(default="group", description="advantage scaling")
    reward_weights: list[float] | None = Field(default=None, description="one weight per reward function")
    multi_objective_aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = Field(
        default="sum_then_normalize", description="how several reward functions combine (TRL)")
    system_prompt: str | None = Field(default=None, description="system message put before every prompt")
    save_steps: int = Field(default=25, ge=1, description="save a checkpoint every N steps (and at the end)")
    save_only_model: bool = Field(default=True, description="skip optimizer state in checkpoints (no resume)")
    logging_steps: int = Field(default=1, ge=1, description="log rewards and frac_reward_zero_std every N steps")
    log_completions: bool = Field(default=False, description="print sampled completions with their rewards")
    eval_every: int = Field(default=10, ge=1, description="probe (light eval) every N steps when a probe is given")
    probe_max_new_tokens: int = Field(default=32, ge=1, description="greedy tokens per probe answer")
    seed: int = Field(default=0, description="seeds LoRA init, data order and sampling")
    policy_pack: str | None = Field(default=None, description="policy directory for lineage; default: shipped pack")
    lora: LoraSettings = Field(default_factory=LoraSettings)

    @model_validator(mode="after")
    def _groups_fit(self) -> GRPOSettings:
        if (self.batch_size * self.grad_accum) % self.num_generations:
            raise ValueError(
                f"batch_size × grad_accum = {self.batch_size * self.grad_accum} completions must be a multiple of "
                f"num_generations = {self.num_generations} (whole groups per generation batch)")
        return self


def prompt_rows(prompts: Iterable[Any], system_prompt: str | None = None) -> list[dict[str, Any]]:
    """PromptRecords (checked trainable, never test split) or mappings with a `prompt` → conversational rows;
    every other field becomes a column the reward functions receive."""
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    records = [p for p in prompts]
    recs = [r for r in records if isinstance(r, PromptRecord)]
    if recs:
        assert_trainable(recs)
        test = [r.id for r in recs if r.split == Split.TEST]
        if test:
            raise ValueError(f"{len(test)} prompt(s) come from the test split and may not be trained on: "
                             f"{', '.join(test[:5])}")
    rows = []
    for i, p in enumerate(records):
        if isinstance(p, PromptRecord):
            rows.append({"prompt": head + [{"role": "user", "content": p.prompt}], "label": p.label.value,
                         "policy_id": p.policy_id or "", "record_id": p.id, "pillar": p.pillar.value,
                         "language": p.language})
            continue
        if not isinstance(p, Mapping):
            raise TypeError(f"prompt {i}: expected a PromptRecord or a mapping, not {type(p).__name__}")
        text = p.get("prompt")
        if not text:
            raise ValueError(f"prompt {i}: field 'prompt' is missing or empty")
        msgs = [{"role": "user", "content": text}] if isinstance(text, str) else [dict(m) for m in text]
        rows.append({**{k: v for k, v in p.items() if k != "prompt"}, "prompt": head + msgs})
    if not rows:
        raise ValueError("no prompts to train on")
    return rows


def train_grpo(prompts: Iterable[Any], reward_funcs: RewardFunc | Sequence[RewardFunc],
               settings: GRPOSettings | None = None, probe=None, callbacks: list | None = None,
               lineage_extra: dict[str, Any] | None = None) -> TrainResult:
    """Run GRPO on `prompts` with `reward_funcs`; `probe` adds violation/over-refusal curves."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    settings = settings or GRPOSettings()
    funcs = [reward_funcs] if callable(reward_funcs) else list(reward_funcs)
    if not funcs:
        raise ValueError("GRPO needs at least one reward function")
    if settings.reward_weights is not None and len(settings.reward_weights) != len(funcs):
        raise ValueError(f"reward_weights has {len(settings.reward_weights)} entries for {len(funcs)} "
                         f"reward functions {reward_func_names(funcs)}")
    prompts = list(prompts.to_list() if hasattr(prompts, "to_list") else prompts)
    rows = prompt_rows(prompts, settings.system_prompt)
    source = resolve_model(settings.model)
    if settings.lora.full_finetune and source.adapter:
        raise ValueError(f"model {settings.model!r}: full fine-tuning needs a plain model directory; "
                         "export the merged model first (raipipe.posttrain.export) and train from hf:MERGED_DIR")
    out = prepare_output_dir(settings.output_dir, settings.overwrite)
    model, tok = load_base(source)
    config = settings.model_dump(mode="json")
    write_json(out / "train_config.json", config)
    probe_cb = as_probe_callback(probe, out, settings.eval_every, settings.probe_max_new_tokens,
                                 settings.system_prompt)
    records = [p for p in prompts if isinstance(p, PromptRecord)]
    hashes = {"prompts": rows_hash(rows)} | ({"prompt_records": dataset_hash(records)} if records else {})
    lineage = build_lineage(
        "grpo", source, hashes, config, settings.policy_pack,
        extra={"n_prompts": len(rows), "reward_funcs": reward_func_names(funcs),
               "probe": probe_cb.probe.describe() if probe_cb else None, **(lineage_extra or {})},
    )
    args = GRPOConfig(
        **cpu_trainer_args(out, seed=settings.seed, learning_rate=settings.learning_rate,
                           max_steps=settings.max_steps, epochs=settings.epochs, batch_size=settings.batch_size,
                           grad_accum=settings.grad_accum, save_steps=settings.save_steps,
                           logging_steps=settings.logging_steps, save_only_model=settings.save_only_model),
        num_generations=settings.num_generations, max_completion_length=settings.max_completion_length,
        temperature=settings.temperature, top_p=settings.top_p, beta=settings.beta, loss_type=settings.loss_type,
        scale_rewards=settings.scale_rewards, reward_weights=settings.reward_weights,
        multi_objective_aggregation=settings.multi_objective_aggregation, log_completions=settings.log_completions,
    )
    check_trl_version()
    with cpu_compact_head():
        trainer = GRPOTrainer(
            # [*funcs]: a fresh list, typed as TRL's wider list of reward sources (names, models, functions)
            model=model, reward_funcs=[*funcs], args=args, train_dataset=Dataset.from_list(rows),
            processing_class=tok, peft_config=settings.lora.peft_config(),
            callbacks=[lineage_callback(lineage)] + ([probe_cb] if probe_cb else []) + list(callbacks or []),
        )
        return run_and_record(trainer, "grpo", out, lineage, probe_cb, n_examples=len(rows))


def zero_std_fractions(result: TrainResult) -> list[tuple[int, float]]:
    """(step, frac_reward_zero_std) from a GRPO run's log: how often a whole group got one reward."""
    return [(int(h["step"]), float(h["frac_reward_zero_std"])) for h in result.history
            if h.get("frac_reward_zero_std") is not None]
