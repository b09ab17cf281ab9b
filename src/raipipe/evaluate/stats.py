"""Interval and test statistics used by every report: Wilson intervals and exact McNemar."""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel

from raipipe.evaluate.judge_error import CorrectedDifference


class Rate(BaseModel):
    """k of n, with a Wilson score interval (well-behaved at small n and near 0 or 1)."""

    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None
    confidence: float = 0.95

    def fmt(self, counts: bool = True) -> str:
        """'12.5% [4.3%, 31.0%] (k=3, n=24)'; without the counts where a table gives n in its header."""
        if self.rate is None:
            return f"n/a (n={self.n})" if counts else "n/a"
        text = f"{self.rate:.1%} [{self.low:.1%}, {self.high:.1%}]"
        return f"{text} (k={self.k}, n={self.n})" if counts else text


def wilson(k: int, n: int, confidence: float = 0.95) -> Rate:
    if n == 0:
        return Rate(k=0, n=0, rate=None, low=None, high=None, confidence=confidence)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # guard float round-off
    return Rate(k=k, n=n, rate=p, low=low, high=high, confidence=confidence)


class McNemar(BaseModel):
    """Paired comparison on the same prompts: b = bad in A only, c = bad in B only."""

    n_pairs: int
    b: int
    c: int
    p_value: float
    rate_a: float | None
    rate_b: float | None
    judge_error: CorrectedDifference | None = None  # B − A corrected for the judge's measured error

    @property
    def difference(self) -> float | None:
        return None if self.rate_a is None or self.rate_b is None else self.rate_b - self.rate_a


def mcnemar(outcomes_a: dict[str, bool], outcomes_b: dict[str, bool]) -> McNemar:
    """Exact (binomial) McNemar test over the ids both runs scored; True means a bad outcome."""
    shared = sorted(set(outcomes_a) & set(outcomes_b))
    b = sum(outcomes_a[i] and not outcomes_b[i] for i in shared)
    c = sum(outcomes_b[i] and not outcomes_a[i] for i in shared)
    p = _two_sided_sign_test(b, b + c)
    n = len(shared)
    return McNemar(
        n_pairs=n, b=b, c=c, p_value=float(p),
        rate_a=sum(outcomes_a[i] for i in shared) / n if n else None,
        rate_b=sum(outcomes_b[i] for i in shared) / n if n else None,
    )


def _two_sided_sign_test(k: int, n: int) -> float:
    """Exact two-sided binomial p-value at p = 0.5 (symmetric, so twice the smaller tail), from the standard
    library: scipy's binomtest gives the same value, but importing scipy costs the CLI half a second."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


class RepeatedChange(BaseModel):
    """One reference run against several repeats (e.g. training seeds) on the same prompts. A prompt counts as
    better when it was bad in the reference and bad in fewer than half of the repeats that scored it, worse in
    the mirror case; prompts are the units, so repeats of one prompt are never counted as independent."""

    n_prompts: int
    repeats: int
    better: int
    worse: int
    p_value: float
    rate_before: float | None
    rate_after: float | None  # mean over the repeats, per prompt, then over prompts


def repeated_change(before: dict[str, bool], afters: list[dict[str, bool]]) -> RepeatedChange:
    """Exact sign test over the prompts the reference and at least one repeat scored; True means bad."""
    shares = {}
    for pid, bad in before.items():
        seen = [a[pid] for a in afters if pid in a]
        if seen:
            shares[pid] = (bad, sum(seen) / len(seen))
    better = sum(bad and share < 0.5 for bad, share in shares.values())
    worse = sum(not bad and share > 0.5 for bad, share in shares.values())
    n = len(shares)
    return RepeatedChange(
        n_prompts=n, repeats=len(afters), better=better, worse=worse,
        p_value=_two_sided_sign_test(better, better + worse),
        rate_before=sum(b for b, _ in shares.values()) / n if n else None,
        rate_after=sum(s for _, s in shares.values()) / n if n else None,
    )
