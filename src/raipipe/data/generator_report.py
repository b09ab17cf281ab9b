"""Cross-split near-duplicate filtering and the accounting report of a generator run.

Reference order is test -> dev -> train: test rows are checked against the whole seed set, dev rows
against every test row, train rows against every test and dev row (generated and seed). A pair that
loses one member loses both, so the kept set holds only complete harmful/benign pairs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raipipe.data.dedup import dedup, normalize_text
from raipipe.data.records import PromptRecord, Split

PARTNER_DROPPED = "pair_partner_dropped"


class DropRow(BaseModel):
    """One candidate that was not kept, with why and what it duplicates."""

    model_config = ConfigDict(extra="forbid")
    id: str
    split: str
    label: str
    pair_id: str | None
    reason: str
    duplicate_of: str
    similarity: float = 1.0
    prompt: str


def _split_of(rec: PromptRecord) -> Split:
    return rec.split or Split.TRAIN


def _drop_partners(kept: list[PromptRecord], drops: list[DropRow]) -> list[PromptRecord]:
    """Drop the surviving member of every pair that lost a member; record it against the partner."""
    lost = {d.pair_id: d.id for d in drops if d.pair_id}
    out = []
    for rec in kept:
        if rec.pair_id in lost:
            drops.append(DropRow(id=rec.id, split=_split_of(rec).value, label=rec.label.value, pair_id=rec.pair_id,
                                 reason=PARTNER_DROPPED, duplicate_of=lost[rec.pair_id], prompt=rec.prompt))
        else:
            out.append(rec)
    return out


def _filter(
    records: list[PromptRecord], refs: list[tuple[PromptRecord, str]], threshold: float, drops: list[DropRow]
) -> list[PromptRecord]:
    """Dedup one split against labelled references (record, origin); near-dups inside the split drop too."""
    origin = {r.id: o for r, o in refs}
    res = dedup(records, against=[r for r, _ in refs], near_threshold=threshold)
    for d in res.dropped:
        where = origin.get(d.duplicate_of, "same_split")
        drops.append(DropRow(
            id=d.record.id, split=_split_of(d.record).value, label=d.record.label.value, pair_id=d.record.pair_id,
            reason=f"{d.kind}_duplicate_of_{where}", duplicate_of=d.duplicate_of, similarity=round(d.similarity, 4),
            prompt=d.record.prompt,
        ))
    return _drop_partners(res.kept, drops)


def check_near_duplicates(
    candidates: Sequence[PromptRecord], seed_records: Sequence[PromptRecord], threshold: float
) -> tuple[list[PromptRecord], list[DropRow]]:
    """Return (kept, dropped) with every candidate in exactly one of them."""
    by_split: dict[Split, list[PromptRecord]] = {s: [] for s in Split}
    for rec in candidates:
        by_split[_split_of(rec)].append(rec)
    seed = {s: [(r, f"seed_{s.value}") for r in seed_records if _split_of(r) == s] for s in Split}
    drops: list[DropRow] = []
    test = _filter(by_split[Split.TEST], seed[Split.TEST] + seed[Split.DEV] + seed[Split.TRAIN], threshold, drops)
    test_refs = [(r, "generated_test") for r in test] + seed[Split.TEST]
    dev = _filter(by_split[Split.DEV], test_refs, threshold, drops)
    dev_refs = [(r, "generated_dev") for r in dev] + seed[Split.DEV]
    train = _filter(by_split[Split.TRAIN], test_refs + dev_refs, threshold, drops)
    kept_ids = {r.id for r in (*train, *dev, *test)}
    kept = [r for r in candidates if r.id in kept_ids]  # keep the generation order
    assert len(kept) + len(drops) == len(candidates)
    return kept, drops


def _word_trigram_ratio(records: Sequence[PromptRecord]) -> float:
    grams: Counter[tuple[str, ...]] = Counter()
    for r in records:
        w = normalize_text(r.prompt).split()
        grams.update(tuple(w[i : i + 3]) for i in range(len(w) - 2))
    total = sum(grams.values())
    return round(len(grams) / total, 4) if total else 0.0


class GenerationReport(BaseModel):
    """What a generator run produced and dropped; `candidates == kept + len(dropped)` always holds."""

    model_config = ConfigDict(extra="forbid")
    pack_ref: str
    config: dict
    candidates: int
    kept: int
    dropped: list[DropRow] = Field(default_factory=list)
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict, description="'split/pillar/language/label' -> rows")
    by_split: dict[str, int] = Field(default_factory=dict)
    by_label: dict[str, int] = Field(default_factory=dict)
    distinct_ratio: float = Field(description="distinct normalised prompts / kept rows (1.0 = no repeats)")
    word_trigram_ratio: float = Field(description="distinct word trigrams / all trigrams: lexical variety")
    topic_splits: dict[str, str] = Field(default_factory=dict, description="'policy/topic' -> split")

    @model_validator(mode="after")
    def _accounted(self) -> GenerationReport:
        if self.candidates != self.kept + len(self.dropped):
            raise ValueError(f"{self.candidates} candidates != {self.kept} kept + {len(self.dropped)} dropped")
        return self

    @classmethod
    def build(
        cls, *, candidates: int, kept: Sequence[PromptRecord], dropped: list[DropRow], config: dict,
        topic_splits: dict[str, str], pack_ref: str,
    ) -> GenerationReport:
        counts = Counter(f"{_split_of(r).value}/{r.pillar.value}/{r.language}/{r.label.value}" for r in kept)
        distinct = len({normalize_text(r.prompt) for r in kept})
        return cls(
            pack_ref=pack_ref, config=config, candidates=candidates, kept=len(kept), dropped=dropped,
            dropped_by_reason=dict(sorted(Counter(d.reason for d in dropped).items())),
            counts=dict(sorted(counts.items())),
            by_split=dict(sorted(Counter(_split_of(r).value for r in kept).items())),
            by_label=dict(sorted(Counter(r.label.value for r in kept).items())),
            distinct_ratio=round(distinct / len(kept), 4) if kept else 0.0,
            word_trigram_ratio=_word_trigram_ratio(kept), topic_splits=topic_splits,
        )
