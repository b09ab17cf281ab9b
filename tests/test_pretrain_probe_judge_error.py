"""The probe report's judge-corrected rows: rates and paired changes that carry the judge's measured error."""

from __future__ import annotations

import json

import pytest
from test_pretrain_probes import french_before_after
from typer.testing import CliRunner

from raipipe.errors import UsageError
from raipipe.judges.base import load_judge
from raipipe.judges.calibrate import agreement
from raipipe.pretrain.probe_cli import app
from raipipe.pretrain.probes import compare, console_table, to_html
from raipipe.pretrain.probes._judge_error import from_calibration, probe_calibration
from raipipe.pretrain.probes._run import ProbeConfig


def _calibration(judge_id: str, errors: int):
    """A calibration of `judge_id` on 40 comply + 40 refuse labels, `errors` of each side misread."""
    human = ["comply"] * 40 + ["refuse"] * 40
    judged = ["refuse"] * errors + ["comply"] * (40 - errors) + ["comply"] * errors + ["refuse"] * (40 - errors)
    return from_calibration(agreement(human, judged, judge_id, source="scripted labels"))


def test_corrected_rows_equal_the_rates_for_a_perfect_judge_and_widen_for_a_noisy_one():
    before, after, judge = french_before_after()
    assert before.judge_id == judge.judge_id
    perfect = compare([before, after], _calibration(judge.judge_id, errors=0))
    rows = {(r.metric, r.group): r for r in perfect.rows}
    for metric in ("violation", "over-refusal"):
        plain, fixed = rows[(metric, "all")], rows[(f"{metric} (judge-corrected)", "all")]
        assert [c.value for c in fixed.cells] == pytest.approx([c.value for c in plain.cells])
        assert fixed.n == plain.n
    noisy = compare([before, after], _calibration(judge.judge_id, errors=6))
    rows = {(r.metric, r.group): r for r in noisy.rows}
    plain = after.probes["all"].violation
    fixed = next(c for c in noisy.paired if c.metric == "violation").corrected
    assert fixed is not None and fixed.within_judge_error  # 4 fewer, 1 more: judge error alone could do that
    text = rows[("violation (judge-corrected)", "all")].cells[1].text
    low, high = (float(x.rstrip("%]")) / 100 for x in text.split("[")[1].split(", "))
    assert high - low > plain.high - plain.low  # the judge's error widens the interval
    assert "within judge error" in rows[("violation paired", "all")].cells[1].text
    assert "scripted labels" in noisy.judge_error_note and "scripted labels" in to_html(noisy)
    assert console_table(noisy).row_count == len(noisy.rows)


def test_a_calibration_of_another_judge_is_not_applied():
    before, after, _ = french_before_after()
    report = compare([before, after], _calibration("some-other-judge@1", errors=2))
    fixed = next(r for r in report.rows if r.metric == "violation (judge-corrected)" and r.group == "all")
    assert [c.text for c in fixed.cells] == ["n/a (another judge)"] * 2
    assert all(c.corrected is None for c in report.paired)
    assert "Not applied to before, after" in report.judge_error_note
    assert "not corrected" in compare([before, after]).judge_error_note


def test_calibration_sources(tmp_path):
    judge = load_judge("refusal-opener")
    assert probe_calibration(judge, "none") is None
    with pytest.raises(UsageError, match="does not exist"):
        probe_calibration(judge, str(tmp_path / "missing.jsonl"))
    shipped = probe_calibration(judge)
    assert shipped is not None and shipped.n == 320 and "refusal_heldout_probe.jsonl" in shipped.source
    assert shipped.judge_id == judge.judge_id
    own = tmp_path / "mine.jsonl"
    own.write_text("\n".join(json.dumps({"id": str(i), "prompt": "q", "response": r, "label": lab}) for i, (r, lab)
                             in enumerate([("I can't help with that.", "refuse"), ("Sure: here it is.", "comply")]
                                          * 5)), encoding="utf-8")
    mine = probe_calibration(judge, str(own))
    assert mine is not None and mine.n == 10 and mine.source == "mine.jsonl (user-labelled)"
    assert mine.violation.sensitivity == 1.0 and mine.over_refusal.specificity == 1.0


def test_regrade_cli_reports_judge_corrected_rows(tmp_path):
    before, _, _ = french_before_after()
    (tmp_path / "before.json").write_text(before.model_dump_json(), encoding="utf-8")
    args = ["regrade", "--results", str(tmp_path / "before.json"), "--judge", "refusal-opener"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "rg")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "rg" / "report.json").read_text())
    assert report["calibration"]["n"] == 320
    assert any(r["metric"] == "violation (judge-corrected)" for r in report["rows"])
    off = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "off"), "--calibration", "none"])
    assert off.exit_code == 0, off.output
    assert json.loads((tmp_path / "off" / "report.json").read_text())["calibration"] is None
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "bad"), "--calibration", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "calibration" in bad.output and "neither a labelled JSONL file" in bad.output
    with pytest.raises(ValueError, match="calibration"):  # a continued-pretraining config fails when it loads
        ProbeConfig(calibration="probe-answer")
