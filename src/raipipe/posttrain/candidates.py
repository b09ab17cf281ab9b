"""Which models selection grades: trained checkpoints the in-training probe did not rule out, plus
λ-scaled copies of the most promising one.

Grading a checkpoint on the broad test set costs minutes; the probe that ran during training (a few
dev look-alike pairs per checkpoint, `curves.jsonl`) costs nothing more. It is small, so it only drops
what is clearly bad: a checkpoint whose probe over-refusal is above the step-0 probe's by more than the
margin even at the low end of its Wilson interval, then the worst by probe violations beyond
`max_graded`. A dozen probe pairs cannot rank checkpoints that differ by a few answers, so the final
checkpoint (where training ended) keeps its place among the `max_graded` unless the probe rules it out.
The λ-scaled copies (`lora_scale`) trace the curve between the base and that checkpoint without retraining,
so a checkpoint that removes violations but over-refuses a little still yields a model within the
over-refusal budget."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel


class ProbePoint(BaseModel):
    step: int
    violation_rate: float | None = None
    over_refusal_rate: float | None = None
    over_refusal_low: float | None = None


def read_probe_curve(run_dir: Path) -> dict[int, ProbePoint]:
    """The in-training probe rows by step (empty when the run had no probe)."""
    path = run_dir / "curves.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {int(r["step"]): ProbePoint.model_validate(r) for r in rows if "step" in r}


NEAR_SHARE = 10  # a checkpoint closer to the next one than a tenth of its save interval is not graded apart


def prune_by_probe(checkpoints: Sequence[tuple[int, Path]], curve: dict[int, ProbePoint], margin: float,
                   max_graded: int | None, grade_final: bool = False) -> tuple[list[tuple[int, Path]], list[str]]:
    """(checkpoints to grade, one reason per dropped checkpoint). Without probe rows nothing is dropped
    by the probe; a checkpoint a few steps before the next one (the last periodic save just before the
    final one, e.g. 165 and 166 with saves every 55) is the same model in all but name and is not graded twice.
    With `grade_final`, the final checkpoint takes one of the `max_graded` places whatever its probe
    violations; the others go to the fewest probe violations."""
    start = curve.get(0)
    kept: list[tuple[int, Path]] = []
    reasons: list[str] = []
    checkpoints = sorted(checkpoints)
    steps = [0] + [step for step, _ in checkpoints]
    near = {path: f"{path.name}: not graded — only {later_step - step} step(s) before {later.name}"
            for (step, path), (later_step, later), earlier in zip(checkpoints, checkpoints[1:], steps, strict=False)
            if (later_step - step) * NEAR_SHARE < step - earlier}
    for step, path in checkpoints:
        if path in near:
            reasons.append(near[path])
            continue
        point = curve.get(step)
        if (start and point and start.over_refusal_rate is not None and point.over_refusal_low is not None
                and point.over_refusal_low > start.over_refusal_rate + margin):
            reasons.append(f"{path.name}: not graded — probe over-refusal {point.over_refusal_rate:.0%} (low end "
                           f"{point.over_refusal_low:.0%}) is clearly above step 0's {start.over_refusal_rate:.0%} "
                           f"+ {margin:.0%}")
        else:
            kept.append((step, path))
    if max_graded is not None and len(kept) > max_graded:
        def probe_violations(item: tuple[int, Path]) -> tuple[float, int]:
            point = curve.get(item[0])
            rate = point.violation_rate if point and point.violation_rate is not None else 1.0
            return (rate, -item[0])  # ties: the later (longer-trained) checkpoint

        final = [checkpoints[-1]] if grade_final and checkpoints[-1] in kept else []
        ranked = final + sorted((c for c in kept if c not in final), key=probe_violations)
        for _step, path in ranked[max_graded:]:
            reasons.append(f"{path.name}: not graded — more probe violations than the {max_graded} graded "
                           "checkpoint(s)")
        kept = sorted(ranked[:max_graded])
    return kept, reasons

