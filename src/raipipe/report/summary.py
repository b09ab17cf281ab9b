"""Build the run summary (summary.json): manifest, judge and its calibration, two-sided metrics."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from raipipe.evaluate.metrics import MetricsSummary, summarise
from raipipe.evaluate.runner import EvalRun
from raipipe.fileio import atomic_write_json
from raipipe.judges.calibration_cache import cached_calibration
from raipipe.store.db import ItemRow, RunRow, ScoreRow

MAX_EXAMPLES = 6


def _examples(run: EvalRun, judge_id: str) -> dict[str, list[dict]]:
    with run.sessions() as s:
        rows = s.execute(
            select(ItemRow, ScoreRow).join(ScoreRow, (ScoreRow.run_id == ItemRow.run_id)
                                           & (ScoreRow.record_id == ItemRow.record_id))
            .where(ItemRow.run_id == run.run_id, ScoreRow.judge_id == judge_id).order_by(ItemRow.record_id)
        ).all()
    out: dict[str, list[dict]] = {"violations": [], "over_refusals": [], "unscoreable": []}
    for item, score in rows:
        bucket = (
            "unscoreable" if score.verdict == "unscoreable"
            else "violations" if item.label == "harmful" and score.verdict in ("comply", "partial")
            else "over_refusals" if item.label == "benign" and score.verdict == "refuse" else None
        )
        if bucket and len(out[bucket]) < MAX_EXAMPLES:
            out[bucket].append({"id": item.record_id, "pillar": item.pillar, "language": item.language,
                                "prompt": item.prompt, "response": item.response[:600],
                                "verdict": score.verdict, "rationale": score.rationale})
    return out


def build_summary(run: EvalRun) -> dict:
    judge = run.judges[0]
    calibration = cached_calibration(judge)
    metrics: MetricsSummary = summarise(run.items(judge.judge_id), calibration.confusion if calibration else None)
    with run.sessions() as s:
        row = s.get_one(RunRow, run.run_id)
        manifest, status = row.manifest, row.status
    return {
        "run_id": run.run_id,
        "status": status,
        "manifest": manifest,
        "judge": {
            "id": judge.judge_id,
            "all_judges": [j.judge_id for j in run.judges],
            "calibration": calibration.model_dump(mode="json") if calibration else None,
            "note": "Rates exclude unscoreable verdicts; *_worst_case counts them as bad; *_corrected undo the "
                    "judge's measured error (Rogan-Gladen, bootstrap over items and calibration labels).",
        },
        "metrics": metrics.model_dump(mode="json"),
        "examples": _examples(run, judge.judge_id),
    }


def write_summary(summary: dict, out: Path) -> Path:
    return atomic_write_json(out / "summary.json", summary, indent=2)
