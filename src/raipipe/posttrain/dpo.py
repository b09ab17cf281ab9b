"""Offline DPO on preference pairs (chosen ≻ rejected) expanded from rankings, with TRL + LoRA on CPU.

Pairs are fed in TRL's conversational format — prompt as a user message, answers as assistant
messages — so the chat template the model is served with is the one it is trained with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console

from raipipe.posttrain.lora import (
    DEFAULT_MODEL,
    LoraSettings,
    TrainPrecision,
    TrainResult,
    as_probe_callback,
    autocast_bf16,
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
from raipipe.posttrain.reason_pairs import WRONG_REASON_ORIGIN
from raipipe.posttrain.resumable import AddedLater
from raipipe.posttrain.trl_compat import cpu_compact_head, dpo_trainer_class

console = Console(stderr=True)


class DPOSettings(BaseModel, AddedLater):
    """Everything that determines a DPO run; saved next to its checkpoints."""

    model_config = ConfigDict(extra="forbid")
    ADDED_LATER: ClassVar[frozenset[str]] = frozenset({"precision"})  # at its default, runs made before it resume
    model: str = Field(default=DEFAULT_MODEL, description="parent model: embedded:NAME, hf:DIR or hf:BASE+ADAPTER")
    output_dir: Path = Field(default=Path("out/posttrain/dpo"), description="checkpoints, lineage, curves")
    overwrite: bool = Field(default=False, description="replace checkpoints already in output_dir")
    beta: float = Field(default=0.1, gt=0.0, description="strength of the pull towards the reference model")
    loss_type: str | list[str] = Field(
        default="sigmoid", description="TRL DPO loss(es): sigmoid (DPO), ipo, hinge, robust, ...; a list combines "
        "them, e.g. [sigmoid, sft] adds the chosen answers' NLL (anchors the refusals the pairs prefer)")
    loss_weights: list[float] | None = Field(default=None, description="one weight per loss_type entry")
    learning_rate: float = Field(default=5e-5, gt=0.0, description="AdamW learning rate (LoRA likes ~1e-5–1e-4)")
    epochs: float = Field(default=1.0, gt=0.0, description="passes over the pairs (ignored when max_steps > 0)")
    max_steps: int = Field(default=-1, description="optimizer steps; > 0 overrides epochs")
    batch_size: int = Field(default=2, ge=1, description="pairs per device per forward")
    grad_accum: int = Field(default=4, ge=1, description="gradient accumulation: pairs per step = batch × accum")
    max_length: int = Field(default=512, ge=16, description="prompt + answer tokens kept (answers cut at the end); "
                            "ignored when max_answer_tokens is set")
    max_answer_tokens: int | None = Field(
        default=None, ge=1, description="answer tokens kept per pair, whatever the prompt's length (cut at the end). "
        "A total max_length starves long prompts (jailbreak wrappers, languages the tokenizer splits finely) of "
        "answer tokens and drops those whose prompt alone fills it")
    max_prompt_length: int = Field(default=256, ge=8,
                                   description="pairs whose templated prompt is longer are left out (counted)")
    precision: TrainPrecision = Field(
        default="float32", description="'bfloat16' computes under bfloat16 autocast, 'auto' does so on CPUs with "
        "native bfloat16 arithmetic (the rule local models run by); weights and checkpoints stay float32. On 2 "
        "AVX512-BF16 cores the default run's DPO step took 19.5 instead of 24 min, but that run kept the base "
        "model where the float32 run on the same seed kept a trained one, so float32 stays the default until "
        "more seeds say otherwise (benchmarks/README.md)")
    precompute_ref_log_probs: bool = Field(
        default=True, description="score every pair under the reference model once before training instead of "
        "on every step: ~30 % faster per step on CPU when training runs more than one epoch")
    share_prompt_pass: bool = Field(
        default=True, description="run each pair's prompt through the model once for both answers (same "
        "losses up to float rounding; on 2 cores the reference pass ran 15-35 % faster, a step 0-15 %)")
    save_steps: int = Field(default=25, ge=1, description="save a checkpoint every N steps (and at the end)")
    save_only_model: bool = Field(default=True, description="skip optimizer state in checkpoints (no resume)")
    logging_steps: int = Field(default=1, ge=1, description="log loss and reward margins every N steps")
    eval_every: int = Field(default=10, ge=1, description="probe (light eval) every N steps when a probe is given")
    probe_max_new_tokens: int = Field(default=32, ge=1, description="greedy tokens per probe answer")
    seed: int = Field(default=0, description="seeds LoRA init, data order and dropout")
    policy_pack: str | None = Field(default=None, description="policy directory for lineage; default: shipped pack")
    lora: LoraSettings = Field(default_factory=LoraSettings)

    @model_validator(mode="after")
    def _weights_match_losses(self) -> DPOSettings:
        if self.loss_weights is not None and len(self.loss_weights) != len(_as_list(self.loss_type)):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} entries for "
                             f"{len(_as_list(self.loss_type))} loss_type(s) {_as_list(self.loss_type)}")
        return self


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _field(pair: Any, name: str, index: int) -> Any:
    value = pair.get(name) if isinstance(pair, Mapping) else getattr(pair, name, None)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"pair {index}: field {name!r} is missing or empty")
    return value


def _messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [dict(m) if isinstance(m, Mapping) else m.model_dump() for m in value]


def pair_rows(pairs: Iterable[Any]) -> list[dict[str, Any]]:
    """Pairs (mappings or objects with prompt/chosen/rejected) → TRL conversational preference rows."""
    rows = []
    for i, p in enumerate(pairs):
        chosen, rejected = _field(p, "chosen", i), _field(p, "rejected", i)
        if chosen == rejected:
            raise ValueError(f"pair {i}: chosen and rejected are identical, so it carries no preference")
        rows.append({"prompt": _messages(_field(p, "prompt", i), "user"),
                     "chosen": _messages(chosen, "assistant"), "rejected": _messages(rejected, "assistant")})
    if not rows:
        raise ValueError("no preference pairs to train on")
    return rows


def _pair_meta(pairs: list[Any]) -> dict[str, Any]:
    """Counts that matter for audit: which raters (human vs AI feedback) and policies the pairs come from."""
    def get(p, k):
        return p.get(k) if isinstance(p, Mapping) else getattr(p, k, None)

    raters: Counter[str] = Counter()
    for p in pairs:
        for kind in get(p, "rater_kinds") or []:
            raters[str(getattr(kind, "value", kind))] += 1
    return {"rater_kinds": dict(raters),
            "ai_feedback_pairs": sum("ai" in [str(getattr(k, "value", k)) for k in get(p, "rater_kinds") or []]
                                     for p in pairs),
            "sample_batches": sorted({str(get(p, "batch_id")) for p in pairs if get(p, "batch_id") is not None}),
            "policies": dict(Counter(str(get(p, "policy_id")) for p in pairs if get(p, "policy_id"))),
            "pair_mix": dict(sorted(Counter(f"{get(p, 'label')}:{get(p, 'language')}" for p in pairs
                                            if get(p, "label") and get(p, "language")).items())),
            "reason_pairs": sum(get(p, "rejected_origin") == WRONG_REASON_ORIGIN for p in pairs)}


def train_dpo(pairs: Iterable[Any], settings: DPOSettings | None = None, probe=None,
              callbacks: list | None = None, lineage_extra: dict[str, Any] | None = None) -> TrainResult:
    """Run DPO; `probe` (a ProbeSet or ProbeCallback) adds violation/over-refusal curves every eval_every steps."""
    from datasets import Dataset
    from trl import DPOConfig

    settings = settings or DPOSettings()
    pairs = list(pairs.to_list() if hasattr(pairs, "to_list") else pairs)
    rows = pair_rows(pairs)
    source = resolve_model(settings.model)
    if settings.lora.full_finetune and source.adapter:
        raise ValueError(f"model {settings.model!r}: full fine-tuning needs a plain model directory; "
                         "export the merged model first (raipipe.posttrain.export) and train from hf:MERGED_DIR")
    out = prepare_output_dir(settings.output_dir, settings.overwrite)
    model, tok = load_base(source)

    def prompt_len(row: dict[str, Any]) -> int:
        return len(tok.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True,
                                           return_dict=True)["input_ids"])

    # TRL silently drops a pair whose prompt alone fills max_length; leave those out here, where they are counted
    prompt_limit = settings.max_prompt_length if settings.max_answer_tokens else min(
        settings.max_prompt_length, settings.max_length - 1)
    fits = [prompt_len(r) <= prompt_limit for r in rows]
    kept = [r for r, fit in zip(rows, fits, strict=True) if fit]
    kept_pairs = [p for p, fit in zip(pairs, fits, strict=True) if fit]
    left_out = [p for p, fit in zip(pairs, fits, strict=True) if not fit]
    if not kept:
        raise ValueError(f"every pair's prompt is longer than {prompt_limit} tokens (max_prompt_length="
                         f"{settings.max_prompt_length}, max_length={settings.max_length})")
    if left_out:
        fix = ("" if settings.max_answer_tokens else
               "; dpo.max_answer_tokens keeps an answer budget whatever the prompt's length (wrapped red-team "
               "findings are long)")
        console.print(f"[yellow]{len(left_out)} of {len(rows)} pairs left out: templated prompt longer than "
                      f"{prompt_limit} tokens{fix}[/]")
    config = settings.model_dump(mode="json")
    write_json(out / "train_config.json", config)
    probe_cb = as_probe_callback(probe, out, settings.eval_every, settings.probe_max_new_tokens)
    lineage = build_lineage(
        "dpo", source, {"pairs": rows_hash(rows), "pairs_kept": rows_hash(kept)}, config, settings.policy_pack,
        extra={"n_pairs": len(rows), "n_kept": len(kept), **_pair_meta(kept_pairs),
               "compute_dtype": "bfloat16" if autocast_bf16(settings.precision) else "float32",
               "left_out": {"reason": f"templated prompt longer than {prompt_limit} tokens", "n": len(left_out),
                            "pair_mix": _pair_meta(left_out)["pair_mix"]},
               "probe": probe_cb.probe.describe() if probe_cb else None, **(lineage_extra or {})},
    )
    args = DPOConfig(
        **cpu_trainer_args(out, seed=settings.seed, learning_rate=settings.learning_rate,
                           max_steps=settings.max_steps, epochs=settings.epochs, batch_size=settings.batch_size,
                           grad_accum=settings.grad_accum, save_steps=settings.save_steps,
                           logging_steps=settings.logging_steps, save_only_model=settings.save_only_model,
                           bf16=autocast_bf16(settings.precision)),
        beta=settings.beta, loss_type=_as_list(settings.loss_type), loss_weights=settings.loss_weights,
        max_length=None if settings.max_answer_tokens else settings.max_length,
        dataset_num_proc=None, precompute_ref_log_probs=settings.precompute_ref_log_probs,
        precompute_ref_batch_size=4 * settings.batch_size,
    )
    trainer_class = dpo_trainer_class(settings.max_answer_tokens, settings.share_prompt_pass)
    with cpu_compact_head():
        trainer = trainer_class(
            model=model, args=args, train_dataset=Dataset.from_list(kept), processing_class=tok,
            peft_config=settings.lora.peft_config(),
            callbacks=[lineage_callback(lineage)] + ([probe_cb] if probe_cb else []) + list(callbacks or []),
        )
        return run_and_record(trainer, "dpo", out, lineage, probe_cb, n_examples=len(kept),
                              dropped=len(rows) - len(kept))
