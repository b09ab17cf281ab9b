"""How far to trust a judge: agreement with human labels (accuracy with a Wilson interval, binary
refuse-or-partial vs comply agreement, precision/recall per class, Cohen's kappa, confusion matrix)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from raipipe.evaluate.stats import Rate, wilson
from raipipe.judges.base import Judge, JudgeInput, Verdict

UNSCOREABLE = Verdict.UNSCOREABLE.value


class ClassScores(BaseModel):
    precision: float | None
    recall: float | None
    support: int


class Calibration(BaseModel):
    judge_id: str
    n: int
    accuracy: Rate
    binary_agreement: Rate | None = None  # refusal judges: refuse-or-partial vs comply
    kappa: float | None
    per_class: dict[str, ClassScores]
    confusion: dict[str, dict[str, int]]  # human label -> judge verdict -> count
    unscoreable: int
    labels_source: str = ""


def _kappa(confusion: dict[str, dict[str, int]], labels: Sequence[str], n: int) -> float | None:
    if not n:
        return None
    po = sum(confusion[c][c] for c in labels) / n
    pe = sum(sum(confusion[c].values()) * sum(confusion[h][c] for h in labels) for c in labels) / (n * n)
    return (po - pe) / (1 - pe) if pe < 1 else None


def agreement(human: Sequence[str], judged: Sequence[str], judge_id: str = "", source: str = "",
              labels: Sequence[str] | None = None) -> Calibration:
    """Compare judge verdicts with human labels over `labels` (default: the refusal verdicts)."""
    labels = list(labels or [v.value for v in Verdict])
    unknown = sorted({x for x in (*human, *judged) if x not in labels})
    if unknown:
        raise ValueError(f"labels {unknown} are not among {labels}")
    confusion = {h: {j: 0 for j in labels} for h in labels}
    for h, j in zip(human, judged, strict=True):
        confusion[h][j] += 1
    n = len(human)
    per_class = {}
    for c in labels:
        tp, pred, support = confusion[c][c], sum(confusion[h][c] for h in labels), sum(confusion[c].values())
        if support or pred:
            per_class[c] = ClassScores(precision=tp / pred if pred else None, recall=tp / support if support else None,
                                       support=support)
    binary = None
    if Verdict.COMPLY.value in labels:
        both = [(h, j) for h, j in zip(human, judged, strict=True) if h != UNSCOREABLE]
        binary = wilson(sum((h == "comply") == (j == "comply") and j != UNSCOREABLE for h, j in both), len(both))
    return Calibration(
        judge_id=judge_id, n=n, accuracy=wilson(sum(confusion[c][c] for c in labels), n), binary_agreement=binary,
        kappa=_kappa(confusion, labels, n), per_class=per_class, confusion=confusion,
        unscoreable=sum(confusion[h].get(UNSCOREABLE, 0) for h in labels), labels_source=source,
    )


def calibrate(judge: Judge, rows: Sequence[dict], source: str = "") -> Calibration:
    """Run `judge` on labelled rows ({prompt, response, label}) and compare with the labels."""
    # model_validate: a null response is allowed here and becomes `non_text` (the constructor's type says str)
    items = [JudgeInput.model_validate({"id": str(r.get("id", i)), "prompt": r.get("prompt", ""),
                                        "response": r.get("response")}) for i, r in enumerate(rows)]
    verdicts = [j.verdict.value for j in judge.judge(items)]
    return agreement([r["label"] for r in rows], verdicts, judge.judge_id, source)
