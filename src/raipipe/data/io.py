"""Read and write JSONL prompt datasets so that every input line is accounted for.

A loaded file ends up as records, skipped lines (blank) or quarantined lines (bad JSON, schema
errors, duplicate ids), so `len(records) + len(skipped) + len(quarantined) == total_lines` always
holds and nothing disappears silently between a data file and a run manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from raipipe.data.records import PromptRecord, SourceKind
from raipipe.errors import DatasetError, TrainingDataError  # defined there, imported from here too
from raipipe.fileio import atomic_write_lines

OnError = Literal["raise", "quarantine"]


@dataclass
class LoadResult:
    """Outcome of reading one JSONL file: records plus every line that did not become one."""

    path: Path
    records: list[PromptRecord] = field(default_factory=list)
    quarantined: list[tuple[int, str, str]] = field(default_factory=list)  # (line_no, raw_line, reason)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line_no, reason)
    total_lines: int = 0

    @property
    def accounted(self) -> int:
        return len(self.records) + len(self.skipped) + len(self.quarantined)

    @property
    def ok(self) -> bool:
        return not self.quarantined


def quarantine_path(path: Path | str) -> Path:
    """`data/x.jsonl` -> `data/x.quarantine.jsonl` (next to the input, easy to find and diff)."""
    p = Path(path)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return p.with_name(f"{stem}.quarantine.jsonl")


def validation_message(exc: ValidationError) -> tuple[str, str]:
    """(field path, message) of a pydantic error, for a DatasetError naming the field."""
    err = exc.errors()[0]
    field_path = ".".join(str(p) for p in err["loc"]) or "<root>"
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return field_path, err["msg"] + extra


ModelT = TypeVar("ModelT", bound=BaseModel)


def read_models(path: Path, model: type[ModelT], text_field: str, what: str) -> list[tuple[int | None, ModelT]]:
    """Rows of a team-written file validated as `model`; a bad row, a blank `text_field` or an empty file is a
    DatasetError naming the file, line and field (`what` names the rows in that last message)."""
    out: list[tuple[int | None, ModelT]] = []
    for line, row in read_rows(path):
        try:
            item = model.model_validate(row)
        except ValidationError as exc:
            raise DatasetError(path, line, *validation_message(exc)) from exc
        if not str(getattr(item, text_field)).strip():
            raise DatasetError(path, line, text_field, "is blank")
        out.append((line, item))
    if not out:
        raise DatasetError(path, None, None, f"no {what} in the file")
    return out


def _split_lines(data: bytes) -> list[bytes]:
    """Split on '\\n' only: U+2028 and friends may legally sit unescaped inside JSON strings."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":  # a trailing newline ends the last line; it does not start a new one
        lines.pop()
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def _parse_line(raw: bytes) -> tuple[PromptRecord | None, str | None, str | None]:
    """Return (record, None, None) or (None, field, message)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, "<encoding>", f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, "<json>", f"invalid JSON: {exc.msg} (column {exc.colno})"
    if not isinstance(obj, dict):
        return None, "<root>", f"expected a JSON object, got {type(obj).__name__}"
    try:
        return PromptRecord.model_validate(obj), None, None
    except ValidationError as exc:
        field_path, msg = validation_message(exc)
        return None, field_path, msg


def load_jsonl(path: Path | str, on_error: OnError = "raise") -> LoadResult:
    """Read a JSONL file of PromptRecords.

    on_error="raise" stops at the first bad line with a DatasetError ("file:line: field 'x': ...");
    on_error="quarantine" collects bad lines in `quarantined` and keeps going.
    """
    if on_error not in ("raise", "quarantine"):
        raise ValueError(f"on_error must be 'raise' or 'quarantine', not {on_error!r}")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(p, None, None, "no such file")
    lines = _split_lines(p.read_bytes())
    result = LoadResult(path=p, total_lines=len(lines))
    first_line_of: dict[str, int] = {}
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            result.skipped.append((line_no, "blank line"))
            continue
        rec, field_path, msg = _parse_line(raw)
        if rec is not None and rec.id in first_line_of:
            field_path, msg = "id", f"duplicate id {rec.id!r} (first seen on line {first_line_of[rec.id]})"
            rec = None
        if rec is None:
            if on_error == "raise":
                raise DatasetError(p, line_no, field_path, msg or "invalid record")
            reason = str(DatasetError(p, line_no, field_path, msg or "invalid record"))
            result.quarantined.append((line_no, raw.decode("utf-8", errors="replace"), reason))
            continue
        first_line_of[rec.id] = line_no
        result.records.append(rec)
    assert result.accounted == result.total_lines  # every line is a record, a skip or a quarantine
    return result


def write_quarantine(result: LoadResult, path: Path | str | None = None) -> Path | None:
    """Write quarantined lines with their reasons; returns the file written, or None if none."""
    if not result.quarantined:
        return None
    out = Path(path) if path else quarantine_path(result.path)
    rows = [
        {"line": line_no, "reason": reason, "raw": raw, "source": str(result.path)}
        for line_no, raw, reason in result.quarantined
    ]
    write_lines(out, (json.dumps(r, ensure_ascii=False) for r in rows))
    return out


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write via a temp file + rename so a crash never leaves a half-written dataset behind."""
    atomic_write_lines(path, lines)


def record_to_json(rec: PromptRecord) -> str:
    return json.dumps(rec.model_dump(mode="json"), ensure_ascii=False)


def write_jsonl(records: Iterable[PromptRecord], path: Path | str) -> Path:
    """Write records one JSON object per line (UTF-8, non-ASCII kept readable)."""
    p = Path(path)
    write_lines(p, (record_to_json(r) for r in records))
    return p


def dataset_hash(records: Iterable[PromptRecord]) -> str:
    """Order-independent content hash (records sorted by id) for run manifests."""
    h = hashlib.sha256()
    for rec in sorted(records, key=lambda r: r.id):
        h.update(json.dumps(rec.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def assert_trainable(records: Iterable[PromptRecord]) -> None:
    """Refuse public-benchmark records in training data: they are for evaluation only.

    Training on a benchmark contaminates every later score measured on it.
    """
    bad = [r for r in records if r.source.kind == SourceKind.PUBLIC_BENCHMARK]
    if bad:
        names = sorted({r.source.name for r in bad})
        ids = ", ".join(r.id for r in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise TrainingDataError(
            f"{len(bad)} record(s) come from public benchmarks {names} and may only be used for "
            f"evaluation, never training: {ids}"
        )


FIELDS = ("pillar", "label", "language", "split")


def count_by(records: Sequence[PromptRecord], *fields: str) -> Counter[tuple[str, ...]]:
    """Count records by a combination of fields (enum values as strings, None as '-')."""
    for f in fields:
        if f not in PromptRecord.model_fields:
            raise ValueError(f"unknown record field {f!r}; known: {sorted(PromptRecord.model_fields)}")

    def val(rec: PromptRecord, f: str) -> str:
        v = getattr(rec, f)
        return "-" if v is None else str(getattr(v, "value", v))

    return Counter(tuple(val(r, f) for f in fields) for r in records)


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def read_rows(path: Path | str) -> list[tuple[int | None, dict[str, Any]]]:
    """Read a tabular file into (line number or None, row dict) pairs.

    Line numbers point into the file (csv/tsv: the row's last line; jsonl: its line); json and
    parquet rows have no line, so callers report them by row index instead.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise DatasetError(p, None, None, "is a directory, not a file" if p.is_dir() else "no such file")
    if suffix in (".csv", ".tsv"):
        out: list[tuple[int | None, dict[str, Any]]] = []
        with p.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            try:
                for row in reader:  # line_num after a read is the row's last line: always inside it
                    if None in row:
                        raise DatasetError(
                            p, reader.line_num, None, f"{len(row[None])} more value(s) than header columns"
                        )
                    out.append((reader.line_num, row))
            except csv.Error as exc:
                raise DatasetError(p, reader.line_num, "<csv>", str(exc)) from exc
        return out
    if suffix == ".jsonl":
        out = []
        for line_no, raw in enumerate(_split_lines(p.read_bytes()), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DatasetError(p, line_no, "<json>", f"invalid JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise DatasetError(p, line_no, "<root>", f"expected a JSON object, got {type(obj).__name__}")
            out.append((line_no, obj))
        return out
    if suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise DatasetError(p, exc.lineno, "<json>", f"invalid JSON: {exc.msg}") from exc
        if isinstance(data, dict):  # {"data": [...]} or {"train": [...]}: accept one list of rows
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DatasetError(p, None, "<root>", "expected a list of objects (or one key holding one)")
            data = lists[0]
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            raise DatasetError(p, None, "<root>", "expected a list of JSON objects")
        return [(None, row) for row in data]
    if suffix == ".parquet":
        import pyarrow.parquet as pq  # heavy; only when a parquet file is actually read

        return [(None, row) for row in pq.read_table(p).to_pylist()]
    raise DatasetError(p, None, None, f"unsupported file type {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")


def cell_text(value: Any) -> str | None:
    """Normalise a table cell to stripped text; empty, None and NaN become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value if v is not None)
    text = str(value).strip()
    return text or None


def _truthy(var: str) -> bool:
    return os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def read_hub(
    hf_id: str, config: str | None, split: str | None, *, source: str, purpose: str = "dataset"
) -> tuple[list[tuple[int | None, dict[str, Any]]], str]:
    """Read one split of a Hugging Face dataset as rows; returns (rows, 'id:config:split').

    Any failure (no network, offline mode, unknown id) becomes one DatasetError that says what to
    do instead, rather than a library traceback or a hang.
    """
    offline = _truthy("HF_HUB_OFFLINE") or _truthy("HF_DATASETS_OFFLINE")
    try:
        import datasets

        if offline:  # honour a variable set after `datasets` was imported (its config reads it once)
            import huggingface_hub.constants as hub_constants

            datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
        dsd = datasets.load_dataset(hf_id, config)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one clear, actionable error
        why = "offline mode (HF_HUB_OFFLINE) allows only datasets already in the local cache; " if offline else ""
        cause = str(exc).splitlines()[0] if str(exc) else ""
        raise DatasetError(
            source, None, None,
            f"could not load Hugging Face dataset {hf_id!r} (config {config!r}) for {purpose}: {why}"
            f"pass a local file path instead. Cause: {type(exc).__name__}: {cause}",
        ) from exc
    splits = list(dsd.keys())
    if split is None and len(splits) == 1:
        split = splits[0]
    if split is None or split not in splits:
        raise DatasetError(source, None, None, f"choose a split with {hf_id}:{config or ''}:SPLIT; have {splits}")
    ref = ":".join([hf_id, config or "", split]) if (config or split) else hf_id
    return [(None, row) for row in dsd[split].to_list()], ref
