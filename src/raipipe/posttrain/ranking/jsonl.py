"""Rankings to and from JSONL, for labelling vendors and for review outside the store.

One line per rater x item:
  {"batch_id", "record_id", "rater_id", "rater_kind": "human"|"ai",
   "order": [candidate ids, best first]      -- or --  "order_indices": [candidate indices, best first],
   "ratings": {candidate: {"helpfulness": 1-5, "adherence": 1-5}}  (optional), "note": "" (optional)}
Candidate indices are the `index` of each candidate within its prompt (0..K-1, as exported), which is
what a vendor sees; ids are store-wide. Ratings are keyed the same way as the order: by id when
`order` is given (export writes both, with ratings by id), by index when only `order_indices` is.

On import every line is accounted for: imported, replaced (the rater's earlier ranking of that item),
skipped (with the reason: blank, unchanged, duplicate) or rejected (file:line:field: why)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from raipipe.fileio import atomic_write_lines
from raipipe.posttrain.ranking.store_ops import Item, RankingError, list_rankings, load_item, save_ranking
from raipipe.store.posttrain_tables import Candidate, Ranking

KNOWN_FIELDS = {"batch_id", "record_id", "rater_id", "rater_kind", "order", "order_indices", "ratings", "note",
                "created_at"}


def candidate_indices(s: Session, batch_ids: Iterable[str]) -> dict[int, int]:
    """candidate id → its index within its prompt, for the given batches."""
    q = select(Candidate.id, Candidate.index).where(Candidate.batch_id.in_(sorted(set(batch_ids))))
    return {cid: idx for cid, idx in s.execute(q).all()}


def ranking_to_dict(row: Ranking, index_of: Mapping[int, int]) -> dict[str, Any]:
    return {
        "batch_id": row.batch_id, "record_id": row.record_id, "rater_id": row.rater_id,
        "rater_kind": row.rater_kind, "order": list(row.order),
        "order_indices": [index_of.get(int(c)) for c in row.order],
        "ratings": dict(row.ratings or {}), "note": row.note or "",
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


def export_dicts(s: Session, batch_id: str | None = None, rater_kind: str | None = None) -> list[dict[str, Any]]:
    rows = list_rankings(s, batch_id=batch_id, rater_kind=rater_kind)
    index_of = candidate_indices(s, {r.batch_id for r in rows})
    return [ranking_to_dict(r, index_of) for r in rows]


def export_jsonl(s: Session, out: str | Path, batch_id: str | None = None, rater_kind: str | None = None) -> int:
    """Write rankings as JSONL (atomically); returns the number of lines."""
    lines = export_dicts(s, batch_id, rater_kind)
    out = Path(out)
    atomic_write_lines(out, (json.dumps(d, ensure_ascii=False) for d in lines))
    return len(lines)


Status = Literal["imported", "replaced", "skipped", "rejected"]


class LineOutcome(BaseModel):
    line: int
    status: Status
    reason: str = ""


class ImportReport(BaseModel):
    path: str
    lines: list[LineOutcome]
    committed: bool

    def count(self, status: Status) -> int:
        return sum(1 for o in self.lines if o.status == status)

    @property
    def rejected(self) -> list[LineOutcome]:
        return [o for o in self.lines if o.status == "rejected"]

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("imported", "replaced", "skipped", "rejected")]
        tail = "" if self.committed else " — nothing written (strict mode: fix the rejected lines)"
        return f"{self.path}: {len(self.lines)} lines: " + ", ".join(parts) + tail


class _LineError(Exception):
    def __init__(self, field: str, message: str):
        self.field, self.message = field, message


def _req_str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _LineError(name, "required, a non-empty string" if value is None else f"must be a non-empty string, "
                         f"got {value!r}")
    return value.strip()


def _index_to_id(item: Item, value: Any, field: str) -> int:
    by_index = {c.index: c.id for c in item.candidates}
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise _LineError(field, f"{value!r} is not a candidate index")
    idx = int(str(value).strip())
    if idx not in by_index:
        raise _LineError(field, f"no candidate with index {idx} (indices {sorted(by_index)})")
    return by_index[idx]


def _parse_line(obj: Any, items: dict[tuple[str, str], Item | None], s: Session) -> tuple[dict[str, Any], str]:
    """A line → save_ranking arguments, plus a note on ignored fields."""
    if not isinstance(obj, dict):
        raise _LineError("(line)", f"must be a JSON object, got {type(obj).__name__}")
    batch_id, record_id = _req_str(obj, "batch_id"), _req_str(obj, "record_id")
    rater_id, rater_kind = _req_str(obj, "rater_id"), _req_str(obj, "rater_kind")
    key = (batch_id, record_id)
    if key not in items:
        items[key] = load_item(s, batch_id, record_id)
    item = items[key]
    if item is None:
        raise _LineError("record_id", f"no candidates for record {record_id!r} in batch {batch_id!r}")
    has_ids, has_idx = obj.get("order") is not None, obj.get("order_indices") is not None
    if not has_ids and not has_idx:
        raise _LineError("order", "required: 'order' (candidate ids) or 'order_indices' (candidate indices)")
    if has_ids and not isinstance(obj["order"], list):
        raise _LineError("order", f"must be a list of candidate ids, got {obj['order']!r}")
    if has_idx:
        if not isinstance(obj["order_indices"], list):
            raise _LineError("order_indices", f"must be a list, got {obj['order_indices']!r}")
        from_idx = [_index_to_id(item, v, "order_indices") for v in obj["order_indices"]]
        if has_ids and [str(v) for v in obj["order"]] != [str(v) for v in from_idx]:
            raise _LineError("order_indices", f"disagrees with 'order' {obj['order']!r} (indices mean ids {from_idx})")
    order = obj["order"] if has_ids else from_idx
    ratings = obj.get("ratings") or {}
    if not isinstance(ratings, dict):
        raise _LineError("ratings", f"must be an object keyed by candidate, got {ratings!r}")
    if not has_ids:
        ratings = {str(_index_to_id(item, k, f"ratings.{k}")): v for k, v in ratings.items()}
    note = obj.get("note") or ""
    if not isinstance(note, str):
        raise _LineError("note", f"must be a string, got {note!r}")
    extra = sorted(set(obj) - KNOWN_FIELDS)
    args = dict(batch_id=batch_id, record_id=record_id, rater_id=rater_id, rater_kind=rater_kind, order=order,
                ratings=ratings, note=note)
    return args, (f"ignored fields {extra}" if extra else "")


def _args_key(args: dict[str, Any]) -> tuple[str, str, str]:
    return args["batch_id"], args["record_id"], args["rater_id"].strip()


def import_lines(s: Session, path: str, lines: list[str]) -> list[LineOutcome]:
    """Import into an open session; a rejected line writes nothing (save_ranking validates first)."""
    items: dict[tuple[str, str], Item | None] = {}
    seen: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
    out: list[LineOutcome] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            out.append(LineOutcome(line=n, status="skipped", reason="blank line"))
            continue
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _LineError("(json)", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            args, warn = _parse_line(obj, items, s)
            key = _args_key(args)
            if key in seen:
                first, first_args = seen[key]
                if first_args == args:
                    out.append(LineOutcome(line=n, status="skipped", reason=f"duplicate of line {first}"))
                    continue
                raise _LineError("rater_id", f"a second, different ranking of this item by {key[2]!r} "
                                 f"(first on line {first})")
            status = save_ranking(s, **args)  # validates fully before it writes anything
            seen[key] = (n, args)
        except _LineError as exc:
            out.append(LineOutcome(line=n, status="rejected", reason=f"{path}:{n}:{exc.field}: {exc.message}"))
            continue
        except RankingError as exc:
            out.append(LineOutcome(line=n, status="rejected", reason=f"{path}:{n}:{exc.field}: {exc.message}"))
            continue
        if status == "unchanged":
            out.append(LineOutcome(line=n, status="skipped", reason="unchanged: already in the store"))
        else:
            out.append(LineOutcome(line=n, status="imported" if status == "created" else "replaced", reason=warn))
    return out


def import_jsonl(sf: sessionmaker[Session], path: str | Path, strict: bool = False) -> ImportReport:
    """Import a vendor's JSONL. Valid lines are written in one transaction; with `strict`, any
    rejected line means nothing is written."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from exc
    with sf() as s:
        outcomes = import_lines(s, str(path), lines)
        committed = not (strict and any(o.status == "rejected" for o in outcomes))
        if committed:
            s.commit()
        else:
            s.rollback()
    return ImportReport(path=str(path), lines=outcomes, committed=committed)
