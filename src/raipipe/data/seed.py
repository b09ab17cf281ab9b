"""The shipped seed set: one JSONL file per pillar under `raipipe/resources/seed/`.

Read through importlib.resources so it works from an installed wheel as well as a checkout.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from raipipe.data.io import DatasetError, count_by, load_jsonl
from raipipe.data.records import Label, PromptRecord, Split
from raipipe.policy.schema import Pillar


def seed_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "seed"))


_E = TypeVar("_E", bound=StrEnum)


def _coerce(values: Iterable[str] | str | None, enum: type[_E], what: str) -> set[_E] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = set()
    for v in values:
        try:
            out.add(enum(str(getattr(v, "value", v)).strip().lower()))
        except ValueError:
            raise ValueError(f"unknown {what} {v!r}; valid: {[e.value for e in enum]}") from None
    return out


def seed_files(directory: Path | str | None = None) -> list[Path]:
    root = Path(directory) if directory else seed_dir()
    return sorted(root.glob("*.jsonl")) if root.is_dir() else []


def load_seed(
    split: Split | str | Iterable[Split | str] | None = None,
    pillars: Pillar | str | Iterable[Pillar | str] | None = None,
    languages: str | Iterable[str] | None = None,
    directory: Path | str | None = None,
) -> list[PromptRecord]:
    """Load the seed records, optionally filtered by split, pillar and language.

    Each file must be named after its pillar and hold only that pillar's records; ids must be
    unique across files. `directory` overrides the shipped folder (tests, custom seed sets).
    """
    splits = _coerce(split, Split, "split")
    wanted_pillars = _coerce(pillars, Pillar, "pillar")
    langs = None if languages is None else {
        lang.strip().lower() for lang in ([languages] if isinstance(languages, str) else languages)
    }
    out: list[PromptRecord] = []
    seen: dict[str, str] = {}
    for path in seed_files(directory):
        try:
            file_pillar: Pillar | None = Pillar(path.stem)
        except ValueError:
            file_pillar = None  # an extra file (e.g. cross-pillar set) is allowed, just not checked
        records = load_jsonl(path).records
        for line_no, rec in enumerate(records, start=1):
            if file_pillar is not None and rec.pillar != file_pillar:
                raise DatasetError(
                    path, _line_of(path, rec.id) or line_no, "pillar",
                    f"record {rec.id!r} has pillar {rec.pillar.value!r} but sits in {path.name}",
                )
            if rec.id in seen:
                raise DatasetError(path, _line_of(path, rec.id), "id", f"id {rec.id!r} also in {seen[rec.id]}")
            seen[rec.id] = path.name
        out.extend(
            r for r in records
            if (splits is None or r.split in splits)
            and (wanted_pillars is None or r.pillar in wanted_pillars)
            and (langs is None or r.language in langs)
        )
    return out


def _line_of(path: Path, record_id: str) -> int | None:
    """Find the line of a record id for an error message (only on the error path)."""
    needle = f'"id": "{record_id}"'
    for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if needle in line or f'"id":"{record_id}"' in line:
            return i
    return None


def pair_summary(records: Iterable[PromptRecord]) -> dict[str, int]:
    """How many pair_ids have both a harmful and a benign member (the over-refusal contrast)."""
    labels: dict[str, set[Label]] = {}
    for r in records:
        if r.pair_id:
            labels.setdefault(r.pair_id, set()).add(r.label)
    complete = sum(1 for s in labels.values() if len(s) == 2)
    return {"pair_ids": len(labels), "complete_pairs": complete, "incomplete_pairs": len(labels) - complete}


def summarize(records: list[PromptRecord]) -> dict[str, Any]:
    """Counts by pillar, label, language and split, plus pairing coverage."""

    def one(field: str) -> dict[str, int]:
        return {k[0]: v for k, v in sorted(count_by(records, field).items())}

    return {
        "total": len(records),
        "by_pillar": one("pillar"),
        "by_label": one("label"),
        "by_language": one("language"),
        "by_split": one("split"),
        "by_source": dict(sorted(Counter(r.source.name for r in records).items())),
        **pair_summary(records),
    }


def seed_stats(directory: Path | str | None = None) -> dict[str, Any]:
    """Summary of the shipped seed set, including which pillar files exist."""
    records = load_seed(directory=directory)
    stats = summarize(records)
    present = {p.stem for p in seed_files(directory)}
    stats["files"] = sorted(present)
    stats["missing_pillars"] = [p.value for p in Pillar if p.value not in present]
    return stats
