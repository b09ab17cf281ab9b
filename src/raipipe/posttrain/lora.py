"""Shared pieces of every optimiser: LoRA settings, loading the base model for training, CPU-safe
trainer arguments, lineage files and the result every `train_*` returns.

Training always starts from an fp32 copy on CPU: the embedded model is small and two shared cores are the
target machine. The weights (and so every checkpoint) stay fp32; an optimiser may compute under bfloat16
autocast where the CPU has native bfloat16 arithmetic (`autocast_bf16`)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import raipipe
from raipipe.fileio import atomic_write_json
from raipipe.models.dtype import resolve_dtype
from raipipe.models.embedded import converted_dir
from raipipe.models.transformers_backend import dir_fingerprint, set_torch_threads
from raipipe.policy.loader import load_pack

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_MODEL = "embedded:smollm2"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TrainPrecision = Literal["auto", "bfloat16", "float32"]


def autocast_bf16(precision: TrainPrecision) -> bool:
    """Whether training computes under bfloat16 autocast. 'auto' follows the rule local models run by
    (raipipe.models.dtype: native bfloat16 CPUs, RAIPIPE_DTYPE overrides); the fp32 weights are unchanged."""
    if precision == "auto":
        return resolve_dtype(None, "cpu") == "bfloat16"
    return precision == "bfloat16"


class LoraSettings(BaseModel):
    """Low-rank adapters (PEFT) on the attention and MLP projections; `full_finetune` trains every weight."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=8, ge=1, description="adapter rank")
    alpha: int = Field(default=16, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="dropout on the adapter input")
    target_modules: list[str] = Field(
        default_factory=lambda: list(LLAMA_TARGETS),
        description="module names to adapt; the default fits Llama-style models (SmolLM2, Llama, Qwen, Mistral)",
    )
    full_finetune: bool = Field(default=False, description="train all weights instead of adapters (no LoRA)")

    def peft_config(self):
        """The `peft.LoraConfig` for the trainer, or None for full fine-tuning."""
        if self.full_finetune:
            return None
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), bias="none", task_type="CAUSAL_LM")


class ModelSource(BaseModel):
    """Where the model being trained comes from: its spec, the directory loaded, and a fingerprint."""

    spec: str
    directory: str
    adapter: str | None = None
    fingerprint: str


def resolve_model(spec: str | Path | None = None) -> ModelSource:
    """`embedded:NAME`, `hf:DIR`, `hf:BASE_DIR+ADAPTER_DIR` or a bare directory → a local source."""
    text = str(spec or DEFAULT_MODEL)
    kind, sep, arg = text.partition(":")
    if sep and kind == "embedded":
        directory, adapter = converted_dir(arg or "smollm2"), None
    elif sep and kind == "hf":
        base, _, adapter_s = arg.partition("+")
        directory, adapter = Path(base), (Path(adapter_s) if adapter_s else None)
    elif Path(text).is_dir():
        directory, adapter = Path(text), None
    else:
        raise ValueError(f"model {text!r}: training needs a local model — embedded:NAME, hf:DIR, "
                         "hf:BASE_DIR+ADAPTER_DIR or a directory path")
    for d in [directory] + ([adapter] if adapter else []):
        if not d.is_dir():
            raise FileNotFoundError(f"model {text!r}: directory {d} does not exist")
    if adapter is None and (directory / "adapter_config.json").exists():
        raise ValueError(f"model {text!r}: {directory} is a LoRA adapter; use hf:BASE_DIR+{directory}")
    fp = dir_fingerprint(directory) + (f"+{dir_fingerprint(adapter)}" if adapter else "")
    return ModelSource(spec=text, directory=str(directory.resolve()),
                       adapter=str(adapter.resolve()) if adapter else None, fingerprint=fp)


def load_base(spec: str | Path | ModelSource | None = None):
    """Load (model, tokenizer) in fp32 on CPU for training. An adapter spec is merged into the weights,
    so a new adapter (or a full fine-tune) starts from the adapted model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    set_torch_threads()
    src = spec if isinstance(spec, ModelSource) else resolve_model(spec)
    tok = AutoTokenizer.from_pretrained(src.directory)
    model: torch.nn.Module = AutoModelForCausalLM.from_pretrained(src.directory, dtype=torch.float32)
    if src.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, src.adapter).merge_and_unload()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # TRL trainers and batched generation both want left padding
    return model.to("cpu"), tok


def cpu_trainer_args(output_dir: Path, *, seed: int, learning_rate: float, max_steps: int, epochs: float,
                     batch_size: int, grad_accum: int, save_steps: int, logging_steps: int,
                     save_only_model: bool, bf16: bool = False) -> dict[str, Any]:
    """TrainingArguments shared by every optimiser: CPU, fp32 weights (bf16: bfloat16 autocast), no
    checkpointing of activations, no trackers."""
    return dict(
        output_dir=str(output_dir), seed=seed, data_seed=seed, learning_rate=learning_rate,
        max_steps=max_steps if max_steps > 0 else -1, num_train_epochs=epochs,
        per_device_train_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
        save_strategy="steps", save_steps=save_steps, save_only_model=save_only_model,
        logging_steps=logging_steps, logging_first_step=True, report_to="none",
        use_cpu=True, bf16=bf16, fp16=False, gradient_checkpointing=False,
        dataloader_num_workers=0, dataloader_pin_memory=False, disable_tqdm=True,
    )


def rows_hash(rows: Iterable[Mapping[str, Any]]) -> str:
    """Order-independent content hash of training rows (JSON-serialisable mappings)."""
    blobs = sorted(json.dumps(dict(r), sort_keys=True, ensure_ascii=False, default=str) for r in rows)
    h = hashlib.sha256()
    for b in blobs:
        h.update(b.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def software_versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {"raipipe": raipipe.__version__, "trl": trl.__version__, "peft": peft.__version__,
            "transformers": transformers.__version__, "torch": torch.__version__}


def build_lineage(kind: str, parent: ModelSource, dataset_hashes: dict[str, str], config: dict[str, Any],
                  policy_pack: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The lineage every artifact carries: what it was made from, under which policies, with what."""
    pack = load_pack(policy_pack)
    return {
        "kind": kind,
        "parent_model": parent.model_dump(),
        "policy_pack": pack.ref,
        "policy_digest": pack.digest,
        "policy_versions": pack.versions(),
        "dataset_hashes": dataset_hashes,
        "config": config,
        "software": software_versions(),
        "created_at": datetime.now(UTC).isoformat(),
        **(extra or {}),
    }


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (tmp + rename) so a crash never leaves half a lineage file."""
    return atomic_write_json(path, data, indent=2, default=str)


def list_checkpoints(run_dir: Path | str) -> list[tuple[int, Path]]:
    """`checkpoint-N` directories of a training run, by step."""
    root = Path(run_dir)
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


class TrainResult(BaseModel):
    """What a training run produced and how long it took; `history` is the trainer's log (incl. probe rows)."""

    algorithm: str
    output_dir: Path
    checkpoints: list[tuple[int, Path]] = Field(description="(step, directory) of every saved checkpoint")
    steps: int
    train_seconds: float
    seconds_per_step: float
    history: list[dict[str, Any]]
    lineage_path: Path
    curves_path: Path | None = None
    n_examples: int
    dropped: int = Field(default=0, description="examples left out (e.g. prompt longer than max_prompt_length)")

    @property
    def last_checkpoint(self) -> Path:
        if not self.checkpoints:
            raise ValueError(f"{self.output_dir}: the run saved no checkpoint")
        return self.checkpoints[-1][1]


def prepare_output_dir(output_dir: Path, overwrite: bool) -> Path:
    """Refuse to mix two runs' checkpoints in one directory unless told to replace them."""
    output_dir = Path(output_dir)
    if output_dir.exists() and list_checkpoints(output_dir):
        if not overwrite:
            raise FileExistsError(f"{output_dir} already holds checkpoints of another run; "
                                  "choose a new output_dir or set overwrite=True")
        for _, ckpt in list_checkpoints(output_dir):
            shutil.rmtree(ckpt)
    for stale in ("curves.jsonl", "log_history.jsonl", "selection.json"):  # a fresh run starts fresh curves
        (output_dir / stale).unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def lineage_callback(lineage: dict[str, Any]):
    """A TrainerCallback that drops lineage.json into every checkpoint directory as it is saved."""
    from transformers import TrainerCallback

    class _Lineage(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                write_json(ckpt / "lineage.json", {**lineage, "step": state.global_step})

    return _Lineage()


def run_and_record(trainer, algorithm: str, output_dir: Path, lineage: dict[str, Any], probe=None,
                   n_examples: int = 0, dropped: int = 0) -> TrainResult:
    """Train, then write lineage.json and log_history.jsonl next to the checkpoints and time the steps
    (probe time left out)."""
    write_json(output_dir / "lineage.json", lineage)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    steps = int(trainer.state.global_step)
    history = [dict(h) for h in trainer.state.log_history]
    with (output_dir / "log_history.jsonl").open("w", encoding="utf-8") as f:
        for h in history:
            f.write(json.dumps(h, default=str) + "\n")
    probe_s = probe.seconds if probe is not None else 0.0
    return TrainResult(
        algorithm=algorithm, output_dir=output_dir, checkpoints=list_checkpoints(output_dir), steps=steps,
        train_seconds=round(seconds, 3), seconds_per_step=round((seconds - probe_s) / max(steps, 1), 3),
        history=history, lineage_path=output_dir / "lineage.json",
        curves_path=probe.curves_path if probe is not None else None, n_examples=n_examples, dropped=dropped,
    )


def as_probe_callback(probe, output_dir: Path, every: int, max_new_tokens: int, system_prompt: str | None = None):
    """Accept a ProbeSet (wrapped with the run's settings) or a ready ProbeCallback; None stays None."""
    if probe is None:
        return None
    from raipipe.posttrain.probe import ProbeCallback, ProbeSet  # lazy: probe imports transformers

    if isinstance(probe, ProbeCallback):
        return probe
    if isinstance(probe, ProbeSet):
        if every < 1:
            raise ValueError(f"eval_every={every}: a probe needs an interval >= 1")
        return ProbeCallback(probe, output_dir / "curves.jsonl", every=every, max_new_tokens=max_new_tokens,
                             system_prompt=system_prompt)
    raise TypeError(f"probe must be a ProbeSet or ProbeCallback, not {type(probe).__name__}")
