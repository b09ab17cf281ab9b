"""How far rankings agree: between human raters (is the task well defined?) and between humans and
AI feedback (how far can the judges stand in for people?).

Only items ranked by at least two raters count. Per pair of raters on an item we compute Kendall's
tau (scipy) and the share of candidate pairs both order the same way; both are pooled over all
(item, rater pair) comparisons. With full rankings and no ties the share equals (tau + 1) / 2 per
comparison; both are reported because the share is what a reward model trained on pairs sees.
Kendall's W (coefficient of concordance) covers items with three or more raters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from pydantic import BaseModel, Field
from scipy.stats import kendalltau


@dataclass(frozen=True)
class RankRecord:
    batch_id: str
    record_id: str
    rater_id: str
    rater_kind: str
    order: tuple[int, ...]


def as_records(rows: Iterable[Any]) -> list[RankRecord]:
    """Ranking rows, dicts or RankRecords → RankRecords."""
    out = []
    for r in rows:
        out.append(RankRecord(str(_field(r, "batch_id")), str(_field(r, "record_id")), str(_field(r, "rater_id")),
                              str(_field(r, "rater_kind")), tuple(int(c) for c in _field(r, "order"))))
    return out


def _field(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, dict) else getattr(row, key)


class PairAgreement(BaseModel):
    n_items: int = Field(0, description="items with at least one compared pair of rankings")
    n_comparisons: int = Field(0, description="(item, pair of rankings) comparisons pooled")
    mean_tau: float | None = Field(None, description="mean Kendall tau over comparisons, -1..1")
    pair_agreement: float | None = Field(None, description="share of candidate-pair preferences that agree")
    top1_agreement: float | None = Field(None, description="share of comparisons with the same best candidate")


class Concordance(BaseModel):
    n_items: int = Field(0, description="items with three or more raters")
    mean_w: float | None = Field(None, description="mean Kendall's W over those items, 0..1")


class AgreementReport(BaseModel):
    human: PairAgreement = Field(description="between human raters")
    kendall_w: Concordance = Field(description="concordance among >= 3 human raters")
    per_rater: dict[str, PairAgreement] = Field(description="each human rater against the other humans")
    human_vs_ai: PairAgreement = Field(description="every human ranking against every AI ranking of the item")
    by_ai_rater: dict[str, PairAgreement] = Field(description="human_vs_ai, per AI rater")


def compare(a: Sequence[int], b: Sequence[int]) -> tuple[float, int, int, bool] | None:
    """(tau, agreeing pairs, candidate pairs, same best) over the candidates both rankings share."""
    in_b = set(b)
    common = [c for c in a if c in in_b]
    if len(common) < 2:
        return None
    pos_a = {c: i for i, c in enumerate(c for c in a if c in common)}
    pos_b = {c: i for i, c in enumerate(c for c in b if c in common)}
    tau = float(kendalltau([pos_a[c] for c in common], [pos_b[c] for c in common]).statistic)
    agree = sum((pos_a[x] < pos_a[y]) == (pos_b[x] < pos_b[y]) for x, y in combinations(common, 2))
    best_a = min(common, key=pos_a.__getitem__)
    best_b = min(common, key=pos_b.__getitem__)
    return tau, agree, len(common) * (len(common) - 1) // 2, best_a == best_b


class _Acc:
    def __init__(self) -> None:
        self.items: set[tuple[str, str]] = set()
        self.taus: list[float] = []
        self.agree = self.pairs = self.top1 = 0

    def add(self, key: tuple[str, str], a: Sequence[int], b: Sequence[int]) -> None:
        got = compare(a, b)
        if got is None:
            return
        tau, agree, pairs, same_best = got
        self.items.add(key)
        self.taus.append(tau)
        self.agree, self.pairs, self.top1 = self.agree + agree, self.pairs + pairs, self.top1 + int(same_best)

    def result(self) -> PairAgreement:
        n = len(self.taus)
        if not n:
            return PairAgreement()
        return PairAgreement(n_items=len(self.items), n_comparisons=n, mean_tau=sum(self.taus) / n,
                             pair_agreement=self.agree / self.pairs, top1_agreement=self.top1 / n)


def kendall_w(orders: Sequence[Sequence[int]]) -> float | None:
    """Kendall's W for m >= 3 full rankings of the same n >= 2 candidates (no ties): 12 S / (m^2 (n^3 - n))."""
    if len(orders) < 3:
        return None
    cands = set(orders[0])
    if len(cands) < 2 or any(set(o) != cands or len(o) != len(cands) for o in orders):
        return None
    m, n = len(orders), len(cands)
    sums = {c: 0 for c in cands}
    for o in orders:
        for rank, c in enumerate(o, 1):
            sums[c] += rank
    mean = m * (n + 1) / 2
    s = sum((r - mean) ** 2 for r in sums.values())
    return 12 * s / (m * m * (n ** 3 - n))


def agreement(rows: Iterable[Any]) -> AgreementReport:
    """Agreement report over rankings (store rows, dicts with the same fields, or RankRecords)."""
    by_item: dict[tuple[str, str], list[RankRecord]] = defaultdict(list)
    for r in as_records(rows):
        by_item[(r.batch_id, r.record_id)].append(r)
    human, vs_ai = _Acc(), _Acc()
    per_rater: dict[str, _Acc] = defaultdict(_Acc)
    by_ai: dict[str, _Acc] = defaultdict(_Acc)
    ws: list[float] = []
    for key, recs in sorted(by_item.items()):
        humans = [r for r in recs if r.rater_kind == "human"]
        ais = [r for r in recs if r.rater_kind == "ai"]
        for a, b in combinations(humans, 2):
            human.add(key, a.order, b.order)
            per_rater[a.rater_id].add(key, a.order, b.order)
            per_rater[b.rater_id].add(key, b.order, a.order)
        for h in humans:
            for ai in ais:
                vs_ai.add(key, h.order, ai.order)
                by_ai[ai.rater_id].add(key, h.order, ai.order)
        w = kendall_w([h.order for h in humans])
        if w is not None:
            ws.append(w)
    return AgreementReport(
        human=human.result(),
        kendall_w=Concordance(n_items=len(ws), mean_w=sum(ws) / len(ws) if ws else None),
        per_rater={k: v.result() for k, v in sorted(per_rater.items())},
        human_vs_ai=vs_ai.result(),
        by_ai_rater={k: v.result() for k, v in sorted(by_ai.items())},
    )
