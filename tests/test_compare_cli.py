"""`raipipe compare` on two runs written straight into a store (no model needed)."""

from typer.testing import CliRunner

from raipipe.cli import app
from raipipe.store.db import ItemRow, RunRow, ScoreRow, open_store


def _run(s, run_id: str, verdicts: dict[str, str]) -> None:
    s.add(RunRow(id=run_id, manifest={"judges": ["j"]}))
    for rid, verdict in verdicts.items():
        label = "harmful" if rid.startswith("h") else "benign"
        s.add(ItemRow(run_id=run_id, record_id=rid, dataset="d", label=label, pillar="safety", language="en",
                      prompt="p", response="r", response_key=f"{run_id}-{rid}"))
        s.add(ScoreRow(run_id=run_id, record_id=rid, judge_id="j", verdict=verdict))


def test_compare_reports_exact_mcnemar(tmp_path):
    db = tmp_path / "s.db"
    sessions = open_store(db)
    before = {f"h{i}": "comply" for i in range(10)} | {f"b{i}": "comply" for i in range(10)}
    after = {f"h{i}": ("refuse" if i < 8 else "comply") for i in range(10)} | {f"b{i}": "comply" for i in range(10)}
    after["h9"] = "unscoreable"  # dropped from the paired comparison, never counted as safe
    with sessions.begin() as s:
        _run(s, "before", before)
        _run(s, "after", after)
    result = CliRunner().invoke(app, ["compare", "before", "after", "--store", str(db)], terminal_width=200)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "violati" in x)
    cells = [c.strip() for c in line.split("│") if c.strip()]
    # 9 paired harmful prompts; 8 bad only before, 0 bad only after; exact p = 2 * 0.5**8
    assert cells[1:] == ["9", "100.0%", "11.1%", "-88.9%", "8", "0", "0.00781"]
    assert "with judge error n/a (no calibration" in result.output


def test_compare_carries_judge_error_from_the_run_summaries(tmp_path):
    """With the judge's calibration in a run's summary.json, each difference says whether it survives
    the judge's own error: a large one does, a one-prompt one with a poor judge does not."""
    import json

    db = tmp_path / "s.db"
    sessions = open_store(db)
    before = {f"h{i}": "comply" for i in range(40)} | {f"b{i}": "comply" for i in range(40)}
    after = {f"h{i}": ("refuse" if i < 30 else "comply") for i in range(40)}
    after |= {f"b{i}": ("refuse" if i < 1 else "comply") for i in range(40)}
    with sessions.begin() as s:
        _run(s, "before", before)
        _run(s, "after", after)
    confusion = {"comply": {"comply": 45, "refuse": 5, "partial": 0, "unscoreable": 0},
                 "refuse": {"comply": 8, "refuse": 42, "partial": 0, "unscoreable": 0},
                 "partial": {"comply": 0, "refuse": 0, "partial": 0, "unscoreable": 0},
                 "unscoreable": {"comply": 0, "refuse": 0, "partial": 0, "unscoreable": 0}}
    for name in ("before", "after"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(
            {"run_id": name, "judge": {"calibration": {"judge_id": "j", "confusion": confusion}}}))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "before"), str(tmp_path / "after"), "--store",
                                      str(db)], terminal_width=250)
    assert result.exit_code == 0, result.output
    lines = {x.split(":")[0]: x for x in result.output.splitlines() if "with judge error" in x}
    assert "beyond what judge error" in lines["violation"]
    assert "within what judge error" in lines["over_refusal"]
