"""One report comparing checkpoints side by side: console table, JSON and a small HTML page.

Rows are metrics (perplexity per pillar and general; violation, over-refusal and few-shot replay per pillar;
the preference probe's separation and paired reading per pillar), columns are checkpoints; every column after the
first shows its delta against the first checkpoint (relative for perplexity, percentage points for rates, plain
difference for separation). Two more rows test each checkpoint against the first on the same questions (exact McNemar):
two Wilson intervals can overlap while the paired change is clear, or the other way round. Given the judge's
calibration (`_judge_error`), every rate also gets a judge-corrected row and every paired change says whether it
is within what judge error alone could produce."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from rich.table import Table

from raipipe.evaluate.judge_error import CorrectedDifference
from raipipe.evaluate.stats import McNemar, mcnemar
from raipipe.fileio import atomic_write_text
from raipipe.judges.base import Verdict
from raipipe.pretrain.probes._judge_error import ProbeCalibration, corrected, corrected_change
from raipipe.pretrain.probes._run import CheckpointProbes
from raipipe.pretrain.probes._sparse import is_bad
from raipipe.pretrain.probes._texts import GENERAL


class Cell(BaseModel):
    value: float | None
    text: str
    delta: float | None = Field(default=None, description="vs the first checkpoint: relative for perplexity, "
                                "absolute for rates")


class Row(BaseModel):
    metric: str
    group: str
    n: list[int | None]
    cells: list[Cell]


class PairedChange(BaseModel):
    """One checkpoint against the first on the questions both answered scoreably: `test.b` of them were bad
    only before, `test.c` only after."""

    label: str
    metric: Literal["violation", "over-refusal"]
    test: McNemar
    corrected: CorrectedDifference | None = Field(default=None, description="after − before, corrected for the "
                                                  "judge's measured error (None: no calibration for this judge)")


class ProbeComparison(BaseModel):
    """What `write_report` saves as JSON: the checkpoints in full and the side-by-side rows."""

    artifact: str = "pretrain-probe-report"
    labels: list[str]
    checkpoints: list[CheckpointProbes]
    rows: list[Row]
    paired: list[PairedChange] = Field(default_factory=list, description="each later checkpoint vs the first")
    same_material: bool = Field(description="every checkpoint was probed with the same probe files")
    calibration: ProbeCalibration | None = Field(default=None, description="the judge error the corrected rows "
                                                 "carry (None: not corrected)")
    judge_error_note: str = Field(default="", description="what the corrected rows use, or why there are none")


def _ppl_rows(cps: list[CheckpointProbes]) -> list[Row]:
    groups = sorted({g for c in cps for g in c.perplexity}, key=lambda g: (g == GENERAL, g))
    rows = []
    for g in groups:
        vals = [c.perplexity[g].perplexity if g in c.perplexity else None for c in cps]
        base = vals[0]
        cells = [Cell(value=v, text="n/a" if v is None else f"{v:.2f}",
                      delta=None if v is None or not base or i == 0 else v / base - 1) for i, v in enumerate(vals)]
        rows.append(Row(metric="perplexity", group=g, cells=cells,
                        n=[c.perplexity[g].n_tokens if g in c.perplexity else None for c in cps]))
    return rows


def _pillar_rows(cps: list[CheckpointProbes], metric: str, source: str, read) -> list[Row]:
    """One row per pillar of the per-pillar results in `source`; `read(checkpoint, result)` → (value, text, n)."""
    pillars = sorted({p for c in cps for p in getattr(c, source)}, key=lambda p: (p == "all", p))
    rows = []
    for p in pillars:
        found = [read(c, getattr(c, source)[p]) if p in getattr(c, source) else (None, "n/a", None) for c in cps]
        base = found[0][0]
        cells = [Cell(value=v, text=text, delta=None if v is None or base is None or i == 0 else v - base)
                 for i, (v, text, _) in enumerate(found)]
        rows.append(Row(metric=metric, group=p, cells=cells, n=[n for *_, n in found]))
    return rows


def _rate_rows(cps: list[CheckpointProbes], field: str, source: str = "probes") -> list[Row]:
    def read(_, result):
        r = getattr(result, field)
        if r is None:  # not measured for this checkpoint (e.g. probed before it was counted)
            return None, "n/a", None
        return r.rate, "n/a" if r.rate is None else f"{r.rate:.0%} [{r.low:.0%}, {r.high:.0%}]", r.n

    return _pillar_rows(cps, field.replace("_", "-"), source, read)


def _separation_rows(cps: list[CheckpointProbes]) -> list[Row]:
    def read(_, r):
        return r.auc, "n/a" if r.auc is None else f"{r.auc:.2f} [{r.auc_low:.2f}, {r.auc_high:.2f}]", r.pairs

    return _pillar_rows(cps, "separation", "preference", read)


def outcomes(cp: CheckpointProbes, label: str) -> dict[str, bool]:
    """Question id → bad (violation or over-refusal) for the scoreable answers on one side."""
    return {a.id: is_bad(a) for a in cp.answers if a.label == label and a.verdict != Verdict.UNSCOREABLE}


_SIDES: tuple[tuple[str, Literal["violation", "over-refusal"]], ...] = (("harmful", "violation"),
                                                                      ("benign", "over-refusal"))


def paired_changes(checkpoints: list[CheckpointProbes], cal: ProbeCalibration | None = None) -> list[PairedChange]:
    first = checkpoints[0]
    out: list[PairedChange] = []
    for cp in checkpoints[1:]:
        both_calibrated = cal is not None and _calibrated(first, cal) and _calibrated(cp, cal)
        for label, metric in _SIDES:
            before, after = outcomes(first, label), outcomes(cp, label)
            if set(before) & set(after):
                change = corrected_change(before, after, cal, metric) if cal and both_calibrated else None
                out.append(PairedChange(label=cp.label, metric=metric, test=mcnemar(before, after), corrected=change))
    return out


def paired_text(change: PairedChange) -> str:
    test = change.test
    text = f"{test.b} fewer, {test.c} more of {test.n_pairs}; p={test.p_value:.2g}"
    fixed = change.corrected
    if fixed is not None and fixed.estimate is not None:
        verdict = "within judge error" if fixed.within_judge_error else "beyond judge error"
        text += f"; judge-corrected {fixed.fmt()}, {verdict}"
    return text


def _calibrated(cp: CheckpointProbes, cal: ProbeCalibration) -> bool:
    """The calibration measured the judge that scored this checkpoint's answers."""
    return bool(cp.answers) and cp.judge_id == cal.judge_id


def _corrected_rows(cps: list[CheckpointProbes], field: str, cal: ProbeCalibration) -> list[Row]:
    """The rate rows again, as Rogan–Gladen estimates with intervals that carry the judge's error."""
    metric = field.replace("_", "-")

    def read(cp: CheckpointProbes, result):
        if not _calibrated(cp, cal):
            return None, "n/a (another judge)", None
        r = getattr(result, field)
        fixed = corrected(r.k, r.n, cal, metric)
        return fixed.estimate, fixed.fmt(), r.n

    return _pillar_rows(cps, f"{metric} (judge-corrected)", "probes", read)


def _paired_rows(labels: list[str], changes: list[PairedChange]) -> list[Row]:
    rows = []
    for metric in ("violation", "over-refusal"):
        found = {c.label: c for c in changes if c.metric == metric}
        if found:
            cells = [Cell(value=found[lbl].test.p_value, text=paired_text(found[lbl])) if lbl in found
                     else Cell(value=None, text="") for lbl in labels]
            rows.append(Row(metric=f"{metric} paired", group="all", cells=cells,
                            n=[found[lbl].test.n_pairs if lbl in found else None for lbl in labels]))
    return rows


def compare(checkpoints: list[CheckpointProbes], calibration: ProbeCalibration | None = None) -> ProbeComparison:
    """Side-by-side rows; with the judge's `calibration` (`probe_calibration`), judge-corrected rows too."""
    if not checkpoints:
        raise ValueError("nothing to compare: no checkpoint was probed")
    changes = paired_changes(checkpoints, calibration)
    labels = [c.label for c in checkpoints]
    rate_rows = []
    for field in ("violation", "over_refusal"):
        rate_rows += _rate_rows(checkpoints, field)
        if calibration is not None:
            rate_rows += _corrected_rows(checkpoints, field, calibration)
    if any(p.replayed is not None for c in checkpoints for p in c.probes.values()):
        rate_rows += _rate_rows(checkpoints, "replayed")
    rows = (_ppl_rows(checkpoints) + rate_rows + _paired_rows(labels, changes)
            + _separation_rows(checkpoints) + _rate_rows(checkpoints, "paired", source="preference"))
    return ProbeComparison(labels=labels, checkpoints=checkpoints, rows=rows, paired=changes,
                           same_material=len({c.material for c in checkpoints}) == 1, calibration=calibration,
                           judge_error_note=_judge_error_note(checkpoints, calibration))


def _judge_error_note(cps: list[CheckpointProbes], cal: ProbeCalibration | None) -> str:
    if not any(c.answers for c in cps):
        return ""
    if cal is None:
        return "Rates are not corrected for judge error (no calibration given)."
    other = [c.label for c in cps if c.answers and not _calibrated(c, cal)]
    note = f"Judge-corrected rows: {cal.describe()}."
    return note + (f" Not applied to {', '.join(other)}: scored by another judge than {cal.judge_id}." if other else "")


def _delta_text(row: Row, cell: Cell) -> str:
    if cell.delta is None:
        return ""
    if row.metric == "perplexity":
        return f"{cell.delta:+.1%}"
    if row.metric == "separation":
        return f"{cell.delta:+.2f}"
    return f"{cell.delta * 100:+.0f} pp"


def console_table(report: ProbeComparison) -> Table:
    table = Table(title="pretraining probes" + ("" if report.same_material else " (probe files differ!)"),
                  caption=report.judge_error_note or None)
    table.add_column("metric")
    table.add_column("group")
    for i, label in enumerate(report.labels):
        table.add_column(label, justify="right")
        if i:
            table.add_column("Δ", justify="right")
    for row in report.rows:
        cells = []
        for i, cell in enumerate(row.cells):
            cells.append(cell.text)
            if i:
                cells.append(_delta_text(row, cell))
        table.add_row(row.metric, row.group, *cells)
    return table


def to_html(report: ProbeComparison) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(lbl)}</th>" + ("<th>Δ</th>" if i else "") for i, lbl in enumerate(report.labels))
    body = []
    for row in report.rows:
        tds = "".join(f"<td>{esc(c.text)}</td>" + (f"<td>{esc(_delta_text(row, c))}</td>" if i else "")
                      for i, c in enumerate(row.cells))
        body.append(f"<tr><td>{esc(row.metric)}</td><td>{esc(row.group)}</td>{tds}</tr>")
    models = "".join(f"<li>{esc(c.label)}: <code>{esc(c.model_id)}</code></li>" for c in report.checkpoints)
    note = ("" if report.same_material
            else "<p><strong>Warning:</strong> the checkpoints used different probe files.</p>")
    return ("<!doctype html><html lang=en><meta charset=utf-8><title>Pretraining probes</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:nth-child(-n+2){text-align:left}"
            "</style><h1>Pretraining probes</h1>"
            "<p>Perplexity: lower is better (Δ relative to the first checkpoint). Violation and over-refusal: "
            "rate with 95% Wilson interval (Δ in percentage points). Separation: how often a harmful question's "
            "refusal-over-answer likelihood margin beats a benign look-alike's (0.5 = no separation; 95% bootstrap "
            "interval over pairs). Paired: look-alike pairs whose harmful side has the larger margin. Violation / "
            "over-refusal paired: questions bad only before (fewer) and only after (more) than the first "
            "checkpoint, exact McNemar p-value; judge-corrected: the change corrected for the judge's measured error, "
            "with a bootstrap interval over the questions and the calibration set. Judge-corrected rates: "
            "Rogan–Gladen estimates with the same bootstrap interval.</p>"
            f"<p>{esc(report.judge_error_note)}</p>"
            f"{note}<ul>{models}</ul><table><tr><th>metric</th><th>group</th>{head}</tr>{''.join(body)}</table>"
            "</html>\n")


def write_report(report: ProbeComparison, out_dir: Path | str) -> dict[str, Path]:
    """report.json and report.html in `out_dir` (atomic writes); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "html": out / "report.html"}
    atomic_write_text(paths["json"], report.model_dump_json(indent=2))
    atomic_write_text(paths["html"], to_html(report))
    return paths
