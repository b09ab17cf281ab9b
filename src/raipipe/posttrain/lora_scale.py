"""Scale a LoRA update by λ ∈ [0, 1]: a cheap continuum between the base model (λ = 0) and a checkpoint (λ = 1).

A LoRA layer computes W0·x + s·B·A·x; multiplying B by λ gives W0 + λ·s·B·A exactly, so a scaled copy of an
adapter is a new candidate model that needs no training. Selection grades the scaled copies beside the real
checkpoints and the two-sided rule picks the λ that meets the over-refusal budget with the fewest violations
— the trade-off curve between caution and helpfulness, traced without retraining."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import load_file, save_file

ADAPTER_WEIGHTS = "adapter_model.safetensors"
LINEAGE = "lineage.json"


def scaled_name(checkpoint: Path, lam: float) -> str:
    """`checkpoint-168` at λ = 0.5 → `checkpoint-168-x0.50` (selection discovers it like any checkpoint)."""
    return f"{checkpoint.name}-x{lam:.2f}"


def scale_of(checkpoint: Path) -> float:
    """The λ a checkpoint directory was scaled by (1.0 for a trained one)."""
    path = checkpoint / LINEAGE
    if not path.exists():
        return 1.0
    return float(json.loads(path.read_text(encoding="utf-8")).get("lora_scale", 1.0))


def scale_adapter(checkpoint: Path | str, lam: float, out_dir: Path | str | None = None) -> Path:
    """Write a copy of a LoRA checkpoint whose update is scaled by `lam`; returns its directory.

    Idempotent: an existing, complete copy is returned as is (the directory appears atomically)."""
    checkpoint = Path(checkpoint)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"LoRA scale must lie in [0, 1], got {lam}")
    weights = checkpoint / ADAPTER_WEIGHTS
    if not weights.exists():
        raise FileNotFoundError(f"{checkpoint} holds no LoRA adapter ({ADAPTER_WEIGHTS} missing); "
                                "λ-scaling needs a LoRA checkpoint")
    target = Path(out_dir) if out_dir else checkpoint.parent / scaled_name(checkpoint, lam)
    if (target / ADAPTER_WEIGHTS).exists():
        return target
    tensors = load_file(str(weights))
    if not any(".lora_B." in k for k in tensors):
        raise ValueError(f"{weights} has no lora_B tensors to scale")
    scaled = {k: (v * lam if ".lora_B." in k else v).contiguous() for k, v in tensors.items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for item in checkpoint.iterdir():
            if item.is_file() and item.name not in {ADAPTER_WEIGHTS, LINEAGE}:
                shutil.copy2(item, tmp / item.name)
        save_file(scaled, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt", "lora_scale": f"{lam:.6g}"})
        lineage = json.loads((checkpoint / LINEAGE).read_text(encoding="utf-8")) if (checkpoint / LINEAGE).exists() \
            else {}
        lineage.update(lora_scale=lam * scale_of(checkpoint), scaled_from=checkpoint.name)
        (tmp / LINEAGE).write_text(json.dumps(lineage, indent=2), encoding="utf-8")
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def scale_adapters(checkpoint: Path | str, scales: Sequence[float]) -> list[Path]:
    """Scaled copies of one checkpoint for every λ in `scales` strictly between 0 and 1 (λ = 0 is the
    baseline and λ = 1 the checkpoint itself, both graded anyway)."""
    return [scale_adapter(checkpoint, lam) for lam in sorted(set(scales)) if 0.0 < lam < 1.0]
