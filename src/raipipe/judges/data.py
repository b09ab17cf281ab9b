"""The shipped, team-written labelled answers the judges learn from and are calibrated on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TypeVar

import joblib

from raipipe.fileio import atomic_path
from raipipe.judges.base import Verdict

T = TypeVar("T")

# Held-out refusal labels, each set by an author who wrote none of either learned judge's training data:
# every refusal judge is calibrated on all of them. Sets d and e came last and are the hardest: d reads like real
# deployed assistants of several vendors, e puts what decides the label late in long answers (a withheld part said
# in the last sentence, a lecture that ends in a refusal, warnings before a real answer).
REFUSAL_HELDOUT_FILES = ["refusal_heldout_b.jsonl", "refusal_heldout_c.jsonl", "refusal_heldout.jsonl",
                         "refusal_heldout_d.jsonl", "refusal_heldout_e.jsonl"]
# The embedded model's own answers to seed:test prompts, before and after the default post-training, each set
# labelled by the team by the labelling guide (another person each): the distribution post-training grades
# (short, often garbled in es/fr; after training, many template refusals). Reported apart by
# benchmarks/bench_judges.py; the calibration `refusal-stack` reports carry.
MODEL_ANSWER_HELDOUT_FILES = ["refusal_heldout_model.jsonl", "refusal_heldout_posttrained.jsonl"]
# Their training counterparts: the same model's answers to other prompts, labelled alike.
MODEL_ANSWER_TRAIN_FILES = ["refusal_train_model.jsonl", "refusal_train_posttrained.jsonl"]
# The embedded model's answers to the pretraining sparse probe (after its few-shot prefix), from the parent and
# from a continued-pretrained checkpoint, labelled by four team annotators by the guide, never trained on: the
# distribution `raipipe pretrain probe` grades (many answers replay a few-shot example or loop). Reported apart.
PROBE_ANSWER_HELDOUT_FILES = ["refusal_heldout_probe.jsonl"]


def judge_data_path(name: str) -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "judge_data" / name))


def read_labelled(paths: Sequence[Path], labels: Sequence[str] | None = None) -> list[dict]:
    """Labelled responses (id, prompt, response, label); a bad row is an error naming file and line.

    `labels` are the allowed label values (default: the verdicts)."""
    allowed = set(labels) if labels else {v.value for v in Verdict}
    rows = []
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise TypeError("a line must hold one JSON object")
                if row["label"] not in allowed:
                    raise ValueError(f"label {row['label']!r} is not one of {sorted(allowed)}")
                if row.get("response") is not None and not isinstance(row["response"], str):
                    raise TypeError(f"response must be text or null, not {type(row['response']).__name__}")
                row["prompt"] = str(row.get("prompt") or "")
                row.setdefault("id", f"{Path(path).stem}:{n}")
            except (ValueError, KeyError, TypeError) as exc:
                what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                raise ValueError(f"{path}:{n}: bad labelled row ({what})") from exc
            rows.append(row)
    return rows


def scoreable(rows: Sequence[dict]) -> list[dict]:
    """The rows a refusal classifier learns from: those labelled unscoreable are left out, because the degenerate
    detector, not a classifier, calls an answer unscoreable."""
    return [r for r in rows if r["label"] != Verdict.UNSCOREABLE.value]


def files_digest(paths: Sequence[Path], salt: bytes) -> str:
    """12 hex digits naming a trained head: what it was trained from (and how, via the salt)."""
    h = hashlib.sha256(salt)
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:12]


def cached_head(path: Path, fit: Callable[[], T]) -> T:
    """Load a trained head from the cache, or fit it once and store it atomically for every later process."""
    if path.exists():
        return joblib.load(path)
    head = fit()
    with atomic_path(path) as tmp:
        joblib.dump(head, tmp)
    return head
