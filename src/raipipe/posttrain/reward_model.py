"""Bradley–Terry reward model on the embedded MiniLM encoder, trained with TRL's RewardTrainer.

The model is AutoModelForSequenceClassification(num_labels=1) over the pair encoding
"[CLS] prompt [SEP] response [SEP]". RewardTrainer takes a BERT-style encoder once the data is
pre-tokenised (its own text path appends an EOS token, which BERT tokenisers do not have), so we
tokenise here with one function, `encode_pair`, that the scorer reuses: training and scoring see
exactly the same ids. TRL's collator forwards no token_type_ids, so neither does the scorer.
Loss: −log σ(r_chosen − r_rejected − margin), the margin being the (scaled) rank gap when enabled."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from raipipe.evaluate.stats import Rate, wilson
from raipipe.fileio import atomic_dir
from raipipe.models.embedded import encoder_dir
from raipipe.models.transformers_backend import set_torch_threads
from raipipe.policy import load_pack
from raipipe.posttrain.pairs import PreferencePair, assert_disjoint, pairs_hash

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel

console = Console(stderr=True)


class RewardModelConfig(BaseModel):
    """How to train the reward model. Every field is recorded in the model's lineage.json."""

    model_config = ConfigDict(extra="forbid")
    output_dir: Path = Field(description="final model directory (written atomically: tmp dir then rename)")
    base_model: Path | None = Field(default=None, description="encoder directory; None = embedded MiniLM")
    epochs: float = Field(default=2.0, gt=0, description="passes over the training pairs")
    max_steps: int = Field(default=-1, description="if > 0, stop after this many optimiser steps (tests, smoke runs)")
    learning_rate: float = Field(default=5e-5, gt=0, description="AdamW learning rate")
    batch_size: int = Field(default=8, ge=1, description="pairs per optimiser step (2× sequences per forward)")
    max_length: int = Field(default=256, ge=16, le=512, description="tokens per prompt+response (truncated)")
    use_margin: bool = Field(default=True, description="subtract the rank-gap margin inside the BT loss")
    margin_scale: float = Field(default=1.0, ge=0, description="margin = margin_scale × rank gap")
    lora: bool = Field(default=False, description="train LoRA adapters (+ the head) instead of all weights")
    lora_r: int = Field(default=8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(default=16, ge=1, description="LoRA scaling")
    seed: int = Field(default=0, description="seed for head init, shuffling and dropout")
    overwrite: bool = Field(default=False, description="replace an existing output_dir")
    score_batch_size: int = Field(default=32, ge=1, description="batch size for held-out scoring")


class RewardModelResult(BaseModel):
    output_dir: Path
    heldout_accuracy: Rate = Field(description="pairwise accuracy on held-out pairs (ties count as wrong)")
    heldout_accuracy_by_label: dict[str, Rate] = Field(default_factory=dict,
                                                       description="the same per prompt label (benign, harmful)")
    n_train: int
    n_heldout: int
    steps: int
    train_loss: float | None
    seconds_per_step: float | None = Field(description="mean optimiser-step wall time, first step excluded")
    metrics: dict[str, Any]


def _trl_version_info() -> dict[str, str]:
    import torch
    import transformers
    import trl

    return {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__}


def encode_pair(tokenizer, prompt: str, response: str, max_length: int) -> list[int]:
    """Token ids of "[CLS] prompt [SEP] response [SEP]", longest side truncated first."""
    return tokenizer(prompt, response, truncation="longest_first", max_length=max_length)["input_ids"]


def _pad(batch: Sequence[Sequence[int]], pad_id: int):
    import torch

    width = max(len(x) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, x in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return ids, mask


def score_texts(model, tokenizer, prompts: Sequence[str], responses: Sequence[str],
                max_length: int, batch_size: int = 32) -> list[float]:
    """Rewards for (prompt, response) pairs; batches sorted by length to waste little padding."""
    import torch

    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    encoded = [encode_pair(tokenizer, p, r, max_length) for p, r in zip(prompts, responses, strict=True)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = [0.0] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = _pad([encoded[i] for i in idx], tokenizer.pad_token_id)
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits[:, 0]
            for i, v in zip(idx, logits.tolist(), strict=True):
                out[i] = float(v)
    finally:
        model.train(was_training)
    return out


def pairwise_wins(model, tokenizer, pairs: Sequence[PreferencePair], max_length: int,
                  batch_size: int = 32) -> list[bool]:
    """Per pair: does r(chosen) > r(rejected)? (ties count as wrong)"""
    if not pairs:
        return []
    prompts = [p.prompt for p in pairs]
    rc = score_texts(model, tokenizer, prompts, [p.chosen for p in pairs], max_length, batch_size)
    rr = score_texts(model, tokenizer, prompts, [p.rejected for p in pairs], max_length, batch_size)
    return [c > r for c, r in zip(rc, rr, strict=True)]


def pairwise_accuracy(model, tokenizer, pairs: Sequence[PreferencePair], max_length: int,
                      batch_size: int = 32) -> Rate:
    """Share of pairs where r(chosen) > r(rejected), with a Wilson 95 % interval."""
    wins = pairwise_wins(model, tokenizer, pairs, max_length, batch_size)
    return wilson(sum(wins), len(wins))


def accuracy_by_label(pairs: Sequence[PreferencePair], wins: Sequence[bool]) -> dict[str, Rate]:
    """Accuracy per prompt label. The pooled figure can hide a model that prefers one behaviour everywhere:
    benign pairs (comply over refuse) outnumber harmful ones, so "compliance always wins" scores well pooled
    and at or below chance on harmful prompts."""
    out: dict[str, Rate] = {}
    for label in sorted({p.label for p in pairs}):
        picked = [w for p, w in zip(pairs, wins, strict=True) if p.label == label]
        out[label] = wilson(sum(picked), len(picked))
    return out


def chance_warning(by_label: dict[str, Rate]) -> str | None:
    """A warning when the reward model is not shown to beat chance on some prompt label (its interval reaches 50 %):
    a combined reward that weights it would then push that side the wrong way or add noise (GRPO)."""
    weak = [f"{label} {rate.fmt()}" for label, rate in by_label.items() if rate.n and (rate.low or 0.0) <= 0.5]
    if not weak:
        return None
    return (f"the reward model is not above chance on held-out pairs of {', '.join(weak)}: weighted in a combined "
            "reward it may favour the wrong answers there (GRPO measures this before it trains and drops the reward "
            "model when it hurts: reward.check_reward_model)")


def _dataset(pairs: Sequence[PreferencePair], tokenizer, config: RewardModelConfig):
    from datasets import Dataset

    rows = []
    for p in pairs:
        row: dict[str, Any] = {"chosen_ids": encode_pair(tokenizer, p.prompt, p.chosen, config.max_length),
                               "rejected_ids": encode_pair(tokenizer, p.prompt, p.rejected, config.max_length)}
        if config.use_margin:
            row["margin"] = float(p.margin) * config.margin_scale
        rows.append(row)
    return Dataset.from_list(rows)


def _callback(total_steps: int):
    """Rich progress bar + per-step wall time (TRL/transformers tqdm is turned off)."""
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        def __init__(self) -> None:
            self.step_times: list[float] = []
            self._t0 = 0.0
            self.progress = Progress(TextColumn("[bold]reward model[/] {task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
            self.task = self.progress.add_task("", total=total_steps)

        def on_train_begin(self, args, state, control, **kw):
            self.progress.start()

        def on_step_begin(self, args, state, control, **kw):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.step_times.append(time.perf_counter() - self._t0)
            self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.progress.update(self.task, description=f"loss {float(logs['loss']):.3f}")

        def on_train_end(self, args, state, control, **kw):
            self.progress.stop()

    return RichProgress()


def _reward_config(config: RewardModelConfig, scratch: Path):
    from trl import RewardConfig

    names = {f.name for f in dataclasses.fields(RewardConfig)}
    no_ckpt: dict[str, Any] = {"activation_checkpointing": False} if "activation_checkpointing" in names else {
        "gradient_checkpointing": False}
    return RewardConfig(
        output_dir=str(scratch), use_cpu=True, bf16=False, fp16=False, **no_ckpt,
        num_train_epochs=config.epochs, max_steps=config.max_steps, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size, max_length=None,  # already truncated by encode_pair
        seed=config.seed, save_strategy="no", eval_strategy="no", report_to=[], logging_steps=1,
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=True,
    )


def _lineage(config: RewardModelConfig, base: Path, train: Sequence[PreferencePair],
             heldout: Sequence[PreferencePair], extra: dict[str, Any] | None) -> dict[str, Any]:
    pack = load_pack()
    every = [*train, *heldout]
    return {
        "kind": "reward-model", "created_at": datetime.now(UTC).isoformat(),
        "parent_model": {"name": "embedded:minilm" if config.base_model is None else str(base), "path": str(base)},
        "policy_pack": pack.ref, "policy_pack_digest": pack.digest, "policy_versions": pack.versions(),
        "datasets": {"train_pairs": pairs_hash(train), "heldout_pairs": pairs_hash(heldout),
                     "n_train": len(train), "n_heldout": len(heldout),
                     "batch_ids": sorted({p.batch_id for p in every})},
        "rater_kinds": dict(Counter("+".join(p.rater_kinds) for p in every)),
        "ai_feedback_pairs": sum(p.ai_feedback for p in every),
        "config": json.loads(config.model_dump_json()),
        "input_format": "tokenizer(prompt, response) -> [CLS] prompt [SEP] response [SEP]; no token_type_ids",
        "versions": _trl_version_info(),
        **(extra or {}),
    }


def train_reward_model(pairs_train: Sequence[PreferencePair], pairs_heldout: Sequence[PreferencePair],
                       config: RewardModelConfig, lineage: dict[str, Any] | None = None) -> RewardModelResult:
    """Train, measure held-out pairwise accuracy, and write model + tokenizer + lineage + metrics."""
    if not pairs_train:
        raise ValueError("no training pairs")
    assert_disjoint(pairs_train, pairs_heldout)
    out = Path(config.output_dir)
    if out.exists() and not config.overwrite:
        raise FileExistsError(f"{out} exists; set overwrite=True to replace it")
    set_torch_threads()
    base = Path(config.base_model) if config.base_model else encoder_dir("minilm")
    with atomic_dir(out) as tmp:
        tokenizer, model = _load_encoder(base, config.seed)
        fit = _fit(model, tokenizer, pairs_train, config, tmp / "_trainer")
        wins = pairwise_wins(fit.model, tokenizer, pairs_heldout, config.max_length, config.score_batch_size)
        acc, by_label = wilson(sum(wins), len(wins)), accuracy_by_label(pairs_heldout, wins)
        times = fit.step_times[1:] or fit.step_times
        seconds_per_step = round(sum(times) / len(times), 4) if times else None
        metrics = {
            "heldout_pairwise_accuracy": acc.model_dump(),
            "heldout_accuracy_by_label": {k: v.model_dump() for k, v in by_label.items()},
            "n_train": len(pairs_train), "n_heldout": len(pairs_heldout),
            "steps": fit.steps, "train_loss": fit.train_loss, "train_seconds": round(fit.seconds, 3),
            "seconds_per_step": seconds_per_step, "log_history": fit.log_history,
        }
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        _write_model_dir(tmp, fit.model, tokenizer, metrics,
                         _lineage(config, base, pairs_train, pairs_heldout, lineage))
    console.print(f"[green]reward model[/] → {out}  held-out accuracy {acc.fmt()}")
    return RewardModelResult(output_dir=out, heldout_accuracy=acc, heldout_accuracy_by_label=by_label,
                             n_train=len(pairs_train), n_heldout=len(pairs_heldout), steps=fit.steps,
                             train_loss=fit.train_loss, seconds_per_step=seconds_per_step,
                             metrics={k: v for k, v in metrics.items() if k != "log_history"})


def _load_encoder(base: Path, seed: int) -> tuple[Any, PreTrainedModel]:
    """The tokenizer and a float32 encoder with a fresh one-output regression head, seeded."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from transformers.utils import logging as hf_logging

    set_seed(seed)  # the regression head is initialised at load time
    tokenizer = AutoTokenizer.from_pretrained(base)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the fresh regression head is *expected* to be missing
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    return tokenizer, model


@dataclasses.dataclass
class _Fit:
    model: PreTrainedModel  # float32, in eval mode, LoRA adapters merged
    steps: int
    train_loss: float
    seconds: float
    step_times: list[float]
    log_history: list[dict[str, Any]]


def _fit(model: PreTrainedModel, tokenizer: Any, pairs: Sequence[PreferencePair], config: RewardModelConfig,
         scratch: Path) -> _Fit:
    """Run TRL's RewardTrainer on the pairs (LoRA adapters when configured), checkpoints in `scratch`."""
    from transformers import PrinterCallback
    from trl import RewardTrainer

    train_ds = _dataset(pairs, tokenizer, config)
    args = _reward_config(config, scratch)
    steps_per_epoch = -(-len(train_ds) // config.batch_size)
    total = config.max_steps if config.max_steps > 0 else int(round(steps_per_epoch * config.epochs))
    progress = _callback(max(total, 1))
    trainer = RewardTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer,
                            peft_config=_lora_config(config), callbacks=[progress])
    trainer.remove_callback(PrinterCallback)  # the rich bar shows the loss; no raw dicts on stdout
    t0 = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - t0
    return _Fit(model=_final_model(trainer.model, config.lora), steps=output.global_step,
                train_loss=output.training_loss, seconds=seconds, step_times=progress.step_times,
                log_history=trainer.state.log_history)


def _lora_config(config: RewardModelConfig) -> LoraConfig | None:
    if not config.lora:
        return None
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=config.lora_alpha,
                      target_modules=["query", "value"], lora_dropout=0.0)


def _final_model(model: object, lora: bool) -> PreTrainedModel:
    """The trained model as a plain float32 transformers model: LoRA adapters merged, so the scorer needs no PEFT."""
    from peft import PeftModel
    from transformers import PreTrainedModel

    if lora:
        if not isinstance(model, PeftModel):
            raise TypeError(f"LoRA reward training returned a {type(model).__name__}, not a PEFT model")
        model = model.merge_and_unload()
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"reward training returned a {type(model).__name__}, not a transformers model")
    return model.float().eval()


def _write_model_dir(directory: Path, model: PreTrainedModel, tokenizer: Any, metrics: dict[str, Any],
                     lineage: dict[str, Any]) -> None:
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str), encoding="utf-8")
    (directory / "lineage.json").write_text(json.dumps(lineage, indent=2, default=str), encoding="utf-8")


class RewardModelScorer:
    """Loads a trained reward-model directory and scores (prompt, response) pairs in batches."""

    def __init__(self, path: str | Path, batch_size: int = 32, max_length: int | None = None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path)
        lineage_file = self.path / "lineage.json"
        if not lineage_file.exists():
            raise FileNotFoundError(f"{lineage_file} is missing: not a reward-model directory written by raipipe")
        self.lineage = json.loads(lineage_file.read_text(encoding="utf-8"))
        set_torch_threads()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path, dtype=torch.float32).eval()
        self.max_length = max_length or int(self.lineage.get("config", {}).get("max_length", 256))
        self.batch_size = batch_size
        self._digest = hashlib.sha256(lineage_file.read_bytes()).hexdigest()[:12]

    @property
    def model_id(self) -> str:
        """Identity for downstream lineage: directory name plus a digest of its lineage."""
        return f"reward-model:{self.path.name}@{self._digest}"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return score_texts(self.model, self.tokenizer, prompts, responses, self.max_length, self.batch_size)
