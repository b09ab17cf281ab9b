"""Ranking operations over the store: what a rater sees next, saving a ranking, listing, progress.

Functions take an open Session and never commit: the caller owns the transaction, so a web request
or a whole vendor import is one atomic write."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from raipipe.errors import StoreError
from raipipe.store.db import _now
from raipipe.store.posttrain_tables import Candidate, Ranking

RATER_KINDS = ("human", "ai")
HUMAN_RATING_KEYS = ("helpfulness", "adherence")  # each 1-5, optional per candidate
_RATER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+~\-]{0,99}$")
SaveStatus = Literal["created", "replaced", "unchanged"]


class RankingError(StoreError, ValueError):
    """A ranking that cannot be stored; `field` names what is wrong (order, ratings, rater_id, …)."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class CandidateView(BaseModel):
    id: int
    index: int
    text: str
    origin: str


class Item(BaseModel):
    """One prompt of a batch with its candidates: the unit a rater ranks."""

    batch_id: str
    record_id: str
    prompt: str
    label: str
    pillar: str
    language: str
    policy_id: str | None
    candidates: list[CandidateView]

    @property
    def candidate_ids(self) -> list[int]:
        return [c.id for c in self.candidates]


class Progress(BaseModel):
    """Coverage of a batch (or the whole store) by human raters, plus one rater's own count."""

    total_items: int
    ranked_items: int  # with >= 1 human ranking
    multi_rated_items: int  # with >= 2 human rankings (usable for agreement)
    human_rankings: int
    ai_rankings: int
    human_raters: int
    rater_done: int = 0  # rankings by the rater asked about (0 when none)


def check_rater(rater_id: str, rater_kind: str) -> str:
    """AI feedback must be recognisable as such: only AI rater ids start with 'ai:'."""
    rater_id = (rater_id or "").strip()
    if rater_kind not in RATER_KINDS:
        raise RankingError("rater_kind", f"must be one of {list(RATER_KINDS)}, got {rater_kind!r}")
    if not _RATER_RE.match(rater_id):
        raise RankingError("rater_id", f"{rater_id!r} must be 1-100 letters, digits or _.@:+~- (no spaces)")
    if rater_kind == "ai" and not rater_id.startswith("ai:"):
        raise RankingError("rater_id", f"an AI rater id must start with 'ai:', got {rater_id!r}")
    if rater_kind == "human" and rater_id.lower().startswith("ai:"):
        raise RankingError("rater_id", f"'ai:' ids are reserved for AI feedback, got {rater_id!r}")
    return rater_id


def load_item(s: Session, batch_id: str, record_id: str) -> Item | None:
    rows = s.scalars(
        select(Candidate).where(Candidate.batch_id == batch_id, Candidate.record_id == record_id)
        .order_by(Candidate.index)
    ).all()
    if not rows:
        return None
    first = rows[0]
    return Item(
        batch_id=batch_id, record_id=record_id, prompt=first.prompt, label=first.label, pillar=first.pillar,
        language=first.language, policy_id=first.policy_id,
        candidates=[CandidateView(id=c.id, index=c.index, text=c.text, origin=c.origin) for c in rows],
    )


def pending_keys(s: Session, rater_id: str, batch_id: str | None = None) -> list[tuple[str, str]]:
    """(batch, record) keys this rater has not ranked: fewest human rankings first, then sampling order,
    so several raters converge on the same items and agreement can be measured early."""
    grouped = select(Candidate.batch_id, Candidate.record_id, func.min(Candidate.id).label("first_id")).group_by(
        Candidate.batch_id, Candidate.record_id
    ).having(func.count(Candidate.id) >= 2)
    if batch_id is not None:
        grouped = grouped.where(Candidate.batch_id == batch_id)
    items = grouped.subquery()
    counts = select(Ranking.batch_id, Ranking.record_id, func.count(Ranking.id).label("n")).where(
        Ranking.rater_kind == "human"
    ).group_by(Ranking.batch_id, Ranking.record_id).subquery()
    mine = select(Ranking.id).where(
        Ranking.rater_id == rater_id, Ranking.batch_id == items.c.batch_id, Ranking.record_id == items.c.record_id
    ).exists()
    q = (
        select(items.c.batch_id, items.c.record_id)
        .outerjoin(counts, (counts.c.batch_id == items.c.batch_id) & (counts.c.record_id == items.c.record_id))
        .where(~mine)
        .order_by(func.coalesce(counts.c.n, 0), items.c.first_id)
    )
    return [(b, r) for b, r in s.execute(q).all()]


def next_item(
    s: Session, rater_id: str, batch_id: str | None = None, exclude: Collection[tuple[str, str]] = ()
) -> Item | None:
    """The next item for `rater_id`, or None when nothing is left; `exclude` holds skipped keys."""
    for key in pending_keys(s, rater_id, batch_id):
        if key not in exclude:
            return load_item(s, *key)
    return None


def _as_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise RankingError(field, f"{value!r} is not a candidate id")
    try:
        return int(value)
    except ValueError:
        raise RankingError(field, f"{value!r} is not a candidate id") from None


def check_order(order: Sequence[Any], candidate_ids: Sequence[int]) -> list[int]:
    """The order as ints; it must name every candidate of the item exactly once."""
    if isinstance(order, (str, bytes)) or not isinstance(order, Sequence):
        raise RankingError("order", f"must be a list of candidate ids, got {order!r}")
    ids = [_as_id(v, "order") for v in order]
    expected = set(candidate_ids)
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    unknown = [i for i in ids if i not in expected]
    missing = sorted(expected - set(ids))
    problems = []
    if dupes:
        problems.append(f"repeated {dupes}")
    if unknown:
        problems.append(f"not candidates of this item {unknown}")
    if missing:
        problems.append(f"missing {missing}")
    if problems:
        raise RankingError("order", "must be a permutation of candidate ids "
                           f"{sorted(expected)}: " + "; ".join(problems))
    return ids


def check_ratings(ratings: Mapping[Any, Any] | None, candidate_ids: Sequence[int], rater_kind: str) -> dict:
    """Ratings keyed by candidate id (as a string, JSON-safe). Human ratings are helpfulness and
    adherence, integers 1-5; AI ratings are free-form judge details."""
    if not ratings:
        return {}
    if not isinstance(ratings, Mapping):
        raise RankingError("ratings", f"must be an object keyed by candidate id, got {ratings!r}")
    out: dict[str, dict] = {}
    for key, value in ratings.items():
        cid = _as_id(key, "ratings")
        if cid not in candidate_ids:
            raise RankingError(f"ratings.{key}", f"not a candidate of this item (candidates {list(candidate_ids)})")
        if not isinstance(value, Mapping):
            raise RankingError(f"ratings.{key}", f"must be an object, got {value!r}")
        if rater_kind == "human":
            clean = {}
            for name, score in value.items():
                if name not in HUMAN_RATING_KEYS:
                    raise RankingError(f"ratings.{key}.{name}", f"unknown rating; known: {list(HUMAN_RATING_KEYS)}")
                if score is None or score == "":
                    continue
                if isinstance(score, bool) or str(score).strip() not in {"1", "2", "3", "4", "5"}:
                    raise RankingError(f"ratings.{key}.{name}", f"must be an integer 1-5, got {score!r}")
                clean[name] = int(str(score).strip())
            if clean:
                out[str(cid)] = clean
        else:
            out[str(cid)] = dict(value)
    return out


def save_ranking(
    s: Session, batch_id: str, record_id: str, rater_id: str, order: Sequence[Any], rater_kind: str = "human",
    ratings: Mapping[Any, Any] | None = None, note: str = "",
) -> SaveStatus:
    """Validate and store one ranking; a re-submit by the same rater replaces the earlier one."""
    rater_id = check_rater(rater_id, rater_kind)
    item = load_item(s, batch_id, record_id)
    if item is None:
        raise RankingError("record_id", f"no candidates for record {record_id!r} in batch {batch_id!r}")
    ids = check_order(order, item.candidate_ids)
    clean_ratings = check_ratings(ratings, item.candidate_ids, rater_kind)
    note = (note or "").strip()[:4000]
    row = s.scalars(select(Ranking).where(
        Ranking.batch_id == batch_id, Ranking.record_id == record_id, Ranking.rater_id == rater_id
    )).first()
    if row is None:
        s.add(Ranking(batch_id=batch_id, record_id=record_id, rater_id=rater_id, rater_kind=rater_kind,
                      order=ids, ratings=clean_ratings, note=note))
        s.flush()
        return "created"
    if (row.rater_kind, list(row.order), dict(row.ratings or {}), row.note) == (rater_kind, ids, clean_ratings, note):
        return "unchanged"
    row.rater_kind, row.order, row.ratings, row.note, row.created_at = rater_kind, ids, clean_ratings, note, _now()
    s.flush()
    return "replaced"


def list_rankings(
    s: Session, batch_id: str | None = None, rater_kind: str | None = None, rater_id: str | None = None
) -> list[Ranking]:
    q = select(Ranking).order_by(Ranking.batch_id, Ranking.record_id, Ranking.rater_id)
    if batch_id is not None:
        q = q.where(Ranking.batch_id == batch_id)
    if rater_kind is not None:
        q = q.where(Ranking.rater_kind == rater_kind)
    if rater_id is not None:
        q = q.where(Ranking.rater_id == rater_id)
    return list(s.scalars(q).all())


def progress(s: Session, batch_id: str | None = None, rater_id: str | None = None) -> Progress:
    items = select(Candidate.batch_id, Candidate.record_id).group_by(Candidate.batch_id, Candidate.record_id)
    items = items.having(func.count(Candidate.id) >= 2)
    if batch_id is not None:
        items = items.where(Candidate.batch_id == batch_id)
    keys = {(b, r) for b, r in s.execute(items).all()}
    per_item: dict[tuple[str, str], int] = {}
    humans: set[str] = set()
    n_human = n_ai = mine = 0
    for r in list_rankings(s, batch_id=batch_id):
        if (r.batch_id, r.record_id) not in keys:
            continue
        if r.rater_kind == "human":
            n_human += 1
            humans.add(r.rater_id)
            per_item[(r.batch_id, r.record_id)] = per_item.get((r.batch_id, r.record_id), 0) + 1
        else:
            n_ai += 1
        mine += int(rater_id is not None and r.rater_id == rater_id)
    return Progress(
        total_items=len(keys), ranked_items=sum(1 for n in per_item.values() if n >= 1),
        multi_rated_items=sum(1 for n in per_item.values() if n >= 2), human_rankings=n_human,
        ai_rankings=n_ai, human_raters=len(humans), rater_done=mine,
    )


def find_policy(pack: Any, policy_id: str | None) -> Any | None:
    """The pack's policy for a candidate's policy_id ('id' or 'id@version'), or None when absent."""
    if not policy_id or pack is None:
        return None
    return pack.policies.get(policy_id.split("@", 1)[0])
