"""Preference pairs from rankings: expansion, rater aggregation, a leak-free split, JSONL + lineage.

A ranking of n candidates (best first) yields n(n-1)/2 (chosen, rejected) pairs whose margin is the
rank gap. Several raters may rank the same prompt: each candidate pair is decided by majority vote,
ties are dropped (no preference we can trust), and every count is reported so that disagreement
never disappears silently. The kinds of the raters behind a pair ('human', 'ai') travel with it, so
AI-feedback pairs stay labelled all the way into the reward model's lineage."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raipipe.errors import DatasetError
from raipipe.fileio import atomic_dir, atomic_write_lines
from raipipe.policy import load_pack

RaterKind = Literal["human", "ai"]
PAIRS_FILES = {"train": "train.jsonl", "heldout": "heldout.jsonl"}


class PairsError(DatasetError, ValueError):
    """Bad ranking or pair data; the message names the file/line or ranking and the field."""


class PreferencePair(BaseModel):
    """One preference: `chosen` beats `rejected` as an answer to `prompt`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str = Field(description="the user prompt both responses answer")
    chosen: str = Field(description="the preferred response text")
    rejected: str = Field(description="the dispreferred response text")
    margin: float = Field(ge=0, description="rank gap (mean over the raters in the majority)")
    record_id: str = Field(min_length=1, description="prompt record id; the unit of the train/held-out split")
    policy_id: str | None = Field(default=None, description="policy the prompt tests, if any")
    label: Literal["harmful", "benign"] = Field(description="label of the prompt")
    language: str | None = Field(default=None, description="language of the prompt (pair weights can target it)")
    rater_kinds: list[RaterKind] = Field(min_length=1, description="kinds of the raters in the majority, sorted")
    batch_id: str = Field(description="sample batch the candidates came from")
    chosen_id: int | None = Field(default=None, description="candidate id of the chosen response")
    rejected_id: int | None = Field(default=None, description="candidate id of the rejected response")
    votes_for: int = Field(default=1, ge=1, description="raters who preferred chosen over rejected")
    votes_against: int = Field(default=0, ge=0, description="raters who preferred rejected over chosen")
    chosen_origin: str | None = Field(default=None, description="how the chosen answer was produced (candidate origin)")
    rejected_origin: str | None = Field(default=None, description="how the rejected answer was produced")
    tier_gap: float | None = Field(
        default=None, description="behaviour-tier gap (e.g. refuse vs comply on a harmful prompt) from the raters "
        "that gave tiers (AI feedback); 0 = same behaviour, order decided by finer scores; None = no tiers given")

    @property
    def decisive(self) -> bool:
        """The two answers differ in behaviour (or a human ranked them without tiers): a preference worth learning."""
        return self.tier_gap is None or self.tier_gap > 0

    @property
    def ai_feedback(self) -> bool:
        """True when any AI rater backs this pair (it must be reported as AI feedback)."""
        return "ai" in self.rater_kinds


class PairStats(BaseModel):
    """What aggregation did: every candidate pair is kept, dropped as a tie or dropped as identical."""

    rankings: int = 0
    records: int = 0
    candidate_pairs: int = Field(default=0, description="distinct unordered candidate pairs seen in any ranking")
    pairs: int = Field(default=0, description="pairs kept")
    unanimous: int = Field(default=0, description="kept pairs with no dissenting rater")
    majority_over_disagreement: int = Field(default=0, description="kept pairs where raters disagreed")
    ties_dropped: int = Field(default=0, description="pairs dropped because raters split evenly")
    identical_dropped: int = Field(default=0, description="pairs dropped because both texts are identical")
    by_rater_kind: dict[str, int] = Field(default_factory=dict, description="kept pairs by rater-kind combination")
    by_label: dict[str, int] = Field(default_factory=dict)


class PairSet(BaseModel):
    pairs: list[PreferencePair]
    stats: PairStats
    lineage: dict[str, Any] = Field(default_factory=dict)


class CandidateLike(Protocol):
    id: int
    batch_id: str
    record_id: str
    prompt: str
    label: str
    policy_id: str | None
    text: str
    language: str


class RankingLike(Protocol):
    id: int
    batch_id: str
    record_id: str
    rater_id: str
    rater_kind: str
    order: list
    ratings: dict | None


def ranking_pairs(order: Sequence[int]) -> list[tuple[int, int, int]]:
    """All (better, worse, rank gap) triples of one ranking, best first."""
    return [(order[i], order[j], j - i) for i in range(len(order)) for j in range(i + 1, len(order))]


def _check_ranking(r: RankingLike, candidates: Mapping[int, CandidateLike]) -> list[int]:
    where = f"ranking {getattr(r, 'id', '?')} (record {r.record_id!r}, rater {r.rater_id!r})"
    if r.rater_kind not in ("human", "ai"):
        raise PairsError(f"{where}: field 'rater_kind': {r.rater_kind!r} is not 'human' or 'ai'")
    order = list(r.order or [])
    if len(set(order)) != len(order):
        raise PairsError(f"{where}: field 'order': a candidate id appears twice: {order}")
    for cid in order:
        cand = candidates.get(cid)
        if cand is None:
            raise PairsError(f"{where}: field 'order': unknown candidate id {cid!r}")
        if cand.record_id != r.record_id or cand.batch_id != r.batch_id:
            raise PairsError(f"{where}: field 'order': candidate {cid} belongs to record {cand.record_id!r} "
                             f"of batch {cand.batch_id!r}")
    return order


def _tiers(ratings: Mapping | None) -> dict[int, int]:
    """Candidate id -> behaviour tier, where a rater's ratings carry one (AI feedback does)."""
    out = {}
    for cid, rating in (ratings or {}).items():
        if isinstance(rating, Mapping) and isinstance(rating.get("tier"), int):
            out[int(cid)] = rating["tier"]
    return out


_VoteKey = tuple[str, int, int]  # (record id, lower candidate id, higher candidate id)
_Vote = tuple[int, int, str]  # (winning candidate id, rank gap, rater kind)
_TierKey = tuple[str, int, int, int]  # (record id, lower id, higher id, winning id)


def expand_rankings(
    rankings: Iterable[RankingLike],
    candidates: Mapping[int, CandidateLike] | Iterable[CandidateLike],
    rater_kinds: set[str] | None = None,
) -> PairSet:
    """Expand rankings into majority-voted preference pairs; `rater_kinds` keeps only those raters."""
    cands = dict(candidates) if isinstance(candidates, Mapping) else {c.id: c for c in candidates}
    stats = PairStats()
    votes, tier_gaps = _collect_votes(rankings, cands, rater_kinds, stats)
    pairs: list[PreferencePair] = []
    for key, vs in sorted(votes.items()):
        pair = _majority_pair(key, vs, cands, tier_gaps, stats)
        if pair is not None:
            pairs.append(pair)
    stats.pairs = len(pairs)
    stats.by_rater_kind = dict(Counter("+".join(p.rater_kinds) for p in pairs))
    stats.by_label = dict(Counter(p.label for p in pairs))
    return PairSet(pairs=pairs, stats=stats)


def _collect_votes(
    rankings: Iterable[RankingLike], cands: Mapping[int, CandidateLike], rater_kinds: set[str] | None,
    stats: PairStats,
) -> tuple[dict[_VoteKey, list[_Vote]], dict[_TierKey, list[int]]]:
    """Every kept rater's vote on every candidate pair it ranked, and the behaviour-tier gaps behind each
    winner; counts rankings, records and candidate pairs into `stats`."""
    votes: dict[_VoteKey, list[_Vote]] = defaultdict(list)
    tier_gaps: dict[_TierKey, list[int]] = defaultdict(list)
    records: set[str] = set()
    seen_raters: set[tuple[str, str, str]] = set()
    for r in rankings:
        if rater_kinds is not None and r.rater_kind not in rater_kinds:
            continue
        order = _check_ranking(r, cands)
        key = (r.batch_id, r.record_id, r.rater_id)
        if key in seen_raters:
            raise PairsError(f"ranking {r.id}: rater {r.rater_id!r} ranked record {r.record_id!r} twice")
        seen_raters.add(key)
        stats.rankings += 1
        records.add(r.record_id)
        tiers = _tiers(getattr(r, "ratings", None))
        for better, worse, gap in ranking_pairs(order):
            lo, hi = sorted((better, worse))
            votes[(r.record_id, lo, hi)].append((better, gap, r.rater_kind))
            if better in tiers and worse in tiers:
                tier_gaps[(r.record_id, lo, hi, better)].append(tiers[worse] - tiers[better])
    stats.records, stats.candidate_pairs = len(records), len(votes)
    return votes, tier_gaps


def _majority_pair(
    key: _VoteKey, vs: list[_Vote], cands: Mapping[int, CandidateLike], tier_gaps: Mapping[_TierKey, list[int]],
    stats: PairStats,
) -> PreferencePair | None:
    """The pair the majority of `vs` decided, or None for a tie or two identical texts (counted in `stats`)."""
    rec, lo, hi = key
    n_lo = sum(1 for w, _, _ in vs if w == lo)
    n_hi = len(vs) - n_lo
    if n_lo == n_hi:
        stats.ties_dropped += 1
        return None
    winner, loser = (lo, hi) if n_lo > n_hi else (hi, lo)
    if cands[winner].text.strip() == cands[loser].text.strip():
        stats.identical_dropped += 1
        return None
    majority = [(g, k) for w, g, k in vs if w == winner]
    against = len(vs) - len(majority)
    pair = _preference_pair(cands, winner, loser, majority, against, tier_gaps.get((rec, lo, hi, winner)))
    if against:
        stats.majority_over_disagreement += 1
    else:
        stats.unanimous += 1
    return pair


def _preference_pair(
    cands: Mapping[int, CandidateLike], winner: int, loser: int, majority: list[tuple[int, str]], against: int,
    gaps: list[int] | None,
) -> PreferencePair:
    """Validate one pair; a bad field (the candidates come from the store untyped) becomes a PairsError."""
    cw, cl = cands[winner], cands[loser]
    try:
        return PreferencePair.model_validate({
            "prompt": cw.prompt, "chosen": cw.text, "rejected": cl.text,
            "margin": sum(g for g, _ in majority) / len(majority),
            "record_id": cw.record_id, "policy_id": cw.policy_id, "label": cw.label,
            "language": getattr(cw, "language", None),
            "chosen_origin": getattr(cw, "origin", None), "rejected_origin": getattr(cl, "origin", None),
            "rater_kinds": sorted({k for _, k in majority}), "batch_id": cw.batch_id,
            "chosen_id": winner, "rejected_id": loser, "votes_for": len(majority), "votes_against": against,
            "tier_gap": sum(gaps) / len(gaps) if gaps else None,
        })
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "<root>"
        raise PairsError(f"candidates {winner}/{loser} (record {cw.record_id!r}): field '{field}': "
                         f"{err['msg']}") from exc


def pairs_from_store(sessions, batch_id: str, rater_kinds: set[str] | None = None) -> PairSet:
    """Pairs from one sample batch's rankings in the store; lineage carries the batch manifest."""
    # lazy: SQLAlchemy and the store tables load only when pairs come from a store
    from sqlalchemy import select

    from raipipe.store.posttrain_tables import Candidate, Ranking, SampleBatch

    with sessions() as s:
        batch = s.get(SampleBatch, batch_id)
        if batch is None:
            raise PairsError(f"no sample batch {batch_id!r} in the store")
        cands = s.scalars(select(Candidate).where(Candidate.batch_id == batch_id)).all()
        ranks = s.scalars(select(Ranking).where(Ranking.batch_id == batch_id).order_by(Ranking.id)).all()
        manifest = dict(batch.manifest or {})
    out = expand_rankings(ranks, cands, rater_kinds)
    out.lineage = {"batch_id": batch_id, "batch_manifest": manifest,
                   "rater_kinds_filter": sorted(rater_kinds) if rater_kinds else None}
    return out


def split_pairs(
    pairs: Sequence[PreferencePair], heldout_fraction: float = 0.2, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Split by record id, stratified by label, so no prompt is ever on both sides."""
    if not 0 <= heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    by_label: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        by_label[p.label].add(p.record_id)
    rng = random.Random(seed)
    held: set[str] = set()
    for label in sorted(by_label):
        ids = sorted(by_label[label])
        rng.shuffle(ids)
        k = round(heldout_fraction * len(ids))
        if heldout_fraction > 0 and len(ids) >= 2:
            k = min(max(k, 1), len(ids) - 1)
        held.update(ids[:k])
    train = [p for p in pairs if p.record_id not in held]
    heldout = [p for p in pairs if p.record_id in held]
    assert_disjoint(train, heldout)
    return train, heldout


def assert_disjoint(train: Iterable[PreferencePair], heldout: Iterable[PreferencePair]) -> None:
    """Raise when a prompt (record id) is on both sides: held-out accuracy would be a lie."""
    both = {p.record_id for p in train} & {p.record_id for p in heldout}
    if both:
        raise PairsError(f"{len(both)} record id(s) in both train and held-out pairs: {sorted(both)[:5]}")


ADDED_FIELDS = frozenset({"language", "chosen_origin", "rejected_origin"})  # added after datasets were first written


def _hash_line(p: PreferencePair) -> str:
    unset = {f for f in ADDED_FIELDS if getattr(p, f) is None}
    return p.model_dump_json(exclude=unset or None)


def pairs_hash(pairs: Iterable[PreferencePair]) -> str:
    """Order-independent content hash for lineage. A later-added field left unset is not hashed, so
    pair datasets written before it existed still verify."""
    lines = sorted(_hash_line(p) for p in pairs)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def write_pairs_jsonl(path: Path | str, pairs: Iterable[PreferencePair]) -> Path:
    p = Path(path)
    return atomic_write_lines(p, (json.dumps(pair.model_dump(mode="json"), ensure_ascii=False) for pair in pairs))


def read_pairs_jsonl(path: Path | str) -> list[PreferencePair]:
    """Read pairs; a bad line raises PairsError naming file, line and field."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(PreferencePair.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "<root>"
            raise PairsError(f"{path}:{n}: field '{field}': {err['msg']}") from exc
    return out


def pairs_lineage(train: Sequence[PreferencePair], heldout: Sequence[PreferencePair],
                  extra: Mapping[str, Any] | None = None, pack=None) -> dict[str, Any]:
    """Lineage of a pair dataset: hashes, counts, AI-feedback share, policy pack and versions."""
    if pack is None:
        pack = load_pack()
    every = [*train, *heldout]
    return {
        "kind": "preference-pairs",
        "created_at": datetime.now(UTC).isoformat(),
        "policy_pack": pack.ref, "policy_pack_digest": pack.digest, "policy_versions": pack.versions(),
        "hashes": {"train": pairs_hash(train), "heldout": pairs_hash(heldout)},
        "counts": {"train": len(train), "heldout": len(heldout),
                   "train_records": len({p.record_id for p in train}),
                   "heldout_records": len({p.record_id for p in heldout})},
        "rater_kinds": dict(Counter("+".join(p.rater_kinds) for p in every)),
        "ai_feedback_pairs": sum(p.ai_feedback for p in every),
        "batch_ids": sorted({p.batch_id for p in every}),
        **dict(extra or {}),
    }


def save_pair_dataset(out_dir: Path | str, train: Sequence[PreferencePair], heldout: Sequence[PreferencePair],
                      extra_lineage: Mapping[str, Any] | None = None, pack=None) -> Path:
    """Write train.jsonl, heldout.jsonl and lineage.json into `out_dir`, all or nothing."""
    assert_disjoint(train, heldout)
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        write_pairs_jsonl(tmp / PAIRS_FILES["train"], train)
        write_pairs_jsonl(tmp / PAIRS_FILES["heldout"], heldout)
        lineage = pairs_lineage(train, heldout, extra_lineage, pack)
        (tmp / "lineage.json").write_text(json.dumps(lineage, indent=2, default=str), encoding="utf-8")
    return out


def load_pair_dataset(out_dir: Path | str) -> tuple[list[PreferencePair], list[PreferencePair], dict[str, Any]]:
    """Read a pair dataset written by save_pair_dataset; checks the hashes against its lineage."""
    d = Path(out_dir)
    lineage = json.loads((d / "lineage.json").read_text(encoding="utf-8"))
    train = read_pairs_jsonl(d / PAIRS_FILES["train"])
    heldout = read_pairs_jsonl(d / PAIRS_FILES["heldout"])
    for name, pairs in (("train", train), ("heldout", heldout)):
        want = lineage.get("hashes", {}).get(name)
        if want and want != pairs_hash(pairs):
            raise PairsError(f"{d / PAIRS_FILES[name]}: content hash differs from lineage.json ({want})")
    assert_disjoint(train, heldout)
    return train, heldout, lineage
