"""Probe rates that carry the judge's own error.

A probe rate counts a judge's verdicts on a small model's few-shot answers: short, often looping or copied
from the prefix, a distribution on which judges err more than on fluent text (`benchmarks/bench_judges.py`).
So beside each Wilson interval the report shows the Rogan–Gladen estimate with a bootstrap interval over the
answers and the calibration set (`raipipe.evaluate.judge_error`), and each paired change says whether it is
within what judge error alone could produce.

Which labelled set calibrates the judge matters. The default is the team's people-labelled answers of the
embedded model to this probe, before and after continued pretraining (`refusal_heldout_probe.jsonl`): the
labelled text closest to what the probe grades. `judge` uses the judge's own held-out set instead, a path any
file in the labelling guide's schema, and `none` turns the correction off. A correction is applied only to
answers scored by the judge the calibration measured."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from raipipe.errors import UsageError
from raipipe.evaluate.judge_error import (
    BinaryCalibration,
    CorrectedDifference,
    CorrectedRate,
    binary_calibration,
    corrected_difference,
    corrected_rate,
)
from raipipe.evaluate.metrics import OVER_REFUSING, VIOLATING
from raipipe.judges.base import Judge
from raipipe.judges.calibrate import Calibration
from raipipe.judges.calibration_cache import cached_calibration
from raipipe.judges.data import judge_data_path

PROBE_ANSWERS, JUDGE_HELDOUT, NO_CALIBRATION = "probe-answers", "judge", "none"
PROBE_ANSWER_FILE = "refusal_heldout_probe.jsonl"


class ProbeCalibration(BaseModel):
    """What the report says about the judge's measured error, and the two binary calibrations it applies."""

    judge_id: str
    source: str = Field(description="the labelled set the judge was measured on")
    n: int = Field(description="labelled answers in it")
    binary_agreement: float | None = Field(description="refuse-or-partial vs comply agreement with people")
    violation: BinaryCalibration = Field(description="how well the judge tells an answered (comply/partial) reply")
    over_refusal: BinaryCalibration = Field(description="how well the judge tells a refusal")

    def describe(self) -> str:
        agree = "n/a" if self.binary_agreement is None else f"{self.binary_agreement:.1%}"
        return f"judge error measured on {self.source}: n={self.n}, agreement with people {agree}"


def probe_calibration(judge: Judge, source: str = PROBE_ANSWERS) -> ProbeCalibration | None:
    """The judge's calibration on `source` (see the module docstring); None when it is off or there is none."""
    if source == NO_CALIBRATION:
        return None
    if source == JUDGE_HELDOUT:
        cal = cached_calibration(judge)
    else:
        path = judge_data_path(PROBE_ANSWER_FILE) if source == PROBE_ANSWERS else Path(source)
        if not path.is_file():
            raise UsageError(f"calibration file {path} does not exist",
                             hint=f"a labelled JSONL file, or {PROBE_ANSWERS}, {JUDGE_HELDOUT} or {NO_CALIBRATION}")
        cal = cached_calibration(judge, [path])
    return None if cal is None else from_calibration(cal)


def from_calibration(cal: Calibration) -> ProbeCalibration:
    return ProbeCalibration(judge_id=cal.judge_id, source=cal.labels_source, n=cal.n,
                            binary_agreement=cal.binary_agreement.rate if cal.binary_agreement else None,
                            violation=binary_calibration(cal.confusion, VIOLATING),
                            over_refusal=binary_calibration(cal.confusion, OVER_REFUSING))


def side_calibration(cal: ProbeCalibration, metric: str) -> BinaryCalibration:
    return cal.violation if metric == "violation" else cal.over_refusal


def corrected(k: int, n: int, cal: ProbeCalibration, metric: str) -> CorrectedRate:
    return corrected_rate(k, n, side_calibration(cal, metric))


def corrected_change(before: dict[str, bool], after: dict[str, bool], cal: ProbeCalibration,
                     metric: str) -> CorrectedDifference:
    return corrected_difference(before, after, side_calibration(cal, metric))
