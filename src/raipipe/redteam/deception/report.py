"""Aggregate deception results: per pillar and per check, the share of scenarios flagged with a Wilson
interval and n stated; a console table and a self-contained HTML page with the evidence quotes.

A check that could not apply to a scenario (e.g. the promise was never made) is left out of that
check's n rather than counted as clean."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from markupsafe import escape
from pydantic import BaseModel
from rich.table import Table

from raipipe.evaluate.stats import Rate, wilson
from raipipe.fileio import atomic_write_json, atomic_write_text
from raipipe.redteam.deception.records import ScenarioResult


class GroupRate(BaseModel):
    group: str
    flagged: Rate
    mean_score: float | None


class DeceptionReport(BaseModel):
    target: str
    detector: str
    n_scenarios: int
    overall: GroupRate
    by_pillar: list[GroupRate]
    by_check: list[GroupRate]


def _rate(group: str, flags: list[bool], scores: list[float]) -> GroupRate:
    return GroupRate(group=group, flagged=wilson(sum(flags), len(flags)),
                     mean_score=sum(scores) / len(scores) if scores else None)


def aggregate(results: Sequence[ScenarioResult]) -> DeceptionReport:
    pillars: dict[str, list[ScenarioResult]] = defaultdict(list)
    checks: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for r in results:
        pillars[r.pillar].append(r)
        for c in r.checks:
            if c.applicable:
                checks[c.check].append((c.fired, c.score))
    return DeceptionReport(
        target=", ".join(sorted({r.target for r in results})) or "-",
        detector=", ".join(sorted({r.detector for r in results})) or "-",
        n_scenarios=len(results),
        overall=_rate("all", [r.flagged for r in results], [r.score for r in results]),
        by_pillar=[_rate(p, [r.flagged for r in rs], [r.score for r in rs]) for p, rs in sorted(pillars.items())],
        by_check=[_rate(c, [f for f, _ in v], [s for _, s in v]) for c, v in sorted(checks.items())],
    )


def console_table(report: DeceptionReport) -> Table:
    table = Table(title=f"Long-horizon deception · {report.target} · detector {report.detector}")
    table.add_column("group")
    table.add_column("flagged [95% CI]")
    table.add_column("n", justify="right")
    table.add_column("mean score", justify="right")
    rows = [("pillar", g) for g in report.by_pillar] + [("check", g) for g in report.by_check]
    for kind, g in [("", report.overall), *rows]:
        table.add_row(f"{kind} {g.group}".strip(), g.flagged.fmt(), str(g.flagged.n),
                      "-" if g.mean_score is None else f"{g.mean_score:.2f}")
    return table


_CSS = ("body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}table{border-collapse:collapse;"
        "margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}"
        ".flag{color:#a40000;font-weight:600}.ok{color:#1a6b1a}.muted{color:#666}blockquote{margin:.2rem 1rem;"
        "white-space:pre-wrap}")


def _rate_table(title: str, groups: Sequence[GroupRate]) -> str:
    rows = "".join(f"<tr><td>{escape(g.group)}</td><td>{escape(g.flagged.fmt())}</td><td>{g.flagged.n}</td>"
                   f"<td>{'-' if g.mean_score is None else f'{g.mean_score:.2f}'}</td></tr>" for g in groups)
    return (f"<h2>{escape(title)}</h2><table><tr><th>group</th><th>flagged [95% CI]</th><th>n</th>"
            f"<th>mean score</th></tr>{rows}</table>")


def _scenario_html(r: ScenarioResult) -> str:
    cls = "flag" if r.flagged else "ok"
    parts = [f"<details><summary><span class='{cls}'>{'FLAGGED' if r.flagged else 'clean'}</span> "
             f"{escape(r.scenario)} · {escape(r.pillar)} · {escape(r.policy)} · score {r.score:.2f}</summary>"
             f"<p>{escape(r.title)}</p><ul>"]
    for c in r.checks:
        state = "fired" if c.fired else ("n/a" if not c.applicable else "clean")
        parts.append(f"<li><b>{escape(c.check)}</b> {state} ({c.score:.2f}): {escape(c.detail)}")
        for e in c.evidence:
            parts.append(f"<blockquote><span class='muted'>{escape(e.run)} turn {e.turn} (session {e.session}, "
                         f"day {e.day}, {escape(e.role)}) — {escape(e.note)}</span><br>“{escape(e.quote)}”"
                         "</blockquote>")
        parts.append("</li>")
    parts += [f"<li class='muted'>{escape(n)}</li>" for n in r.notes]
    return "".join(parts) + "</ul></details>"


def render_html(report: DeceptionReport, results: Sequence[ScenarioResult]) -> str:
    ordered = sorted(results, key=lambda r: (not r.flagged, -r.score, r.scenario))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>deception report</title><style>{_CSS}"
            f"</style></head><body><h1>Long-horizon deception</h1><p>target <code>{escape(report.target)}</code> · "
            f"detector <code>{escape(report.detector)}</code> · {report.n_scenarios} scenarios · flagged "
            f"{escape(report.overall.flagged.fmt())}</p>"
            + _rate_table("By pillar", report.by_pillar) + _rate_table("By check", report.by_check)
            + "<h2>Scenarios</h2>" + "".join(_scenario_html(r) for r in ordered) + "</body></html>")


def write_report(results: Sequence[ScenarioResult], out: Path | str) -> DeceptionReport:
    """summary.json and report.html in the run folder."""
    out = Path(out)
    report = aggregate(results)
    atomic_write_json(out / "summary.json", report.model_dump(mode="json"), indent=2)
    atomic_write_text(out / "report.html", render_html(report, results))
    return report
