"""Render a run summary as one self-contained HTML file (inline SVG plots, no external assets)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup, escape

from raipipe.evaluate.metrics import TwoSided
from raipipe.fileio import atomic_write_text
from raipipe.report.plots import two_sided_bars


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _rate_cell(r) -> str:
    if r.rate is None:
        return f"n/a (n={r.n})"
    return f"{r.rate:.1%} <span class='muted'>[{r.low:.1%}, {r.high:.1%}] n={r.n}</span>"


def _corrected_cell(c) -> str:
    if c is None:
        return "<span class='muted'>no calibration</span>"
    if c.estimate is None:
        return f"<span class='muted'>{escape(c.fmt())}</span>"
    return f"{c.estimate:.1%} <span class='muted'>[{c.low:.1%}, {c.high:.1%}]</span>"


def two_sided_table(groups: dict) -> Markup:
    """Per group: each rate with its Wilson interval, and beside it the judge-error-aware estimate."""
    rows = []
    for name, g in groups.items():
        g = g if isinstance(g, TwoSided) else TwoSided.model_validate(g)
        uns = g.unscoreable_harmful + g.unscoreable_benign
        rows.append(f"<tr><td>{escape(name)}</td><td class='num'>{_rate_cell(g.violation)}</td>"
                    f"<td class='num'>{_corrected_cell(g.violation_corrected)}</td>"
                    f"<td class='num'>{_rate_cell(g.over_refusal)}</td>"
                    f"<td class='num'>{_corrected_cell(g.over_refusal_corrected)}</td><td class='num'>{uns}</td></tr>")
    head = ("<table><tr><th>group</th><th class='num'>violation rate [95 % CI]</th>"
            "<th class='num'>with judge error</th><th class='num'>over-refusal rate [95 % CI]</th>"
            "<th class='num'>with judge error</th><th class='num'>unscoreable</th></tr>")
    return Markup(head + "".join(rows) + "</table>")


def _template():
    text = (resources.files("raipipe") / "resources" / "templates" / "report.html.j2").read_text(encoding="utf-8")
    return Environment(autoescape=True).from_string(text)


def render_report(summary: dict, out: Path) -> Path:
    m = summary["metrics"]
    plots = {
        "pillar": two_sided_bars({k: TwoSided.model_validate(v) for k, v in m["by_pillar"].items()}, "By pillar"),
        "language": two_sided_bars({k: TwoSided.model_validate(v) for k, v in m["by_language"].items()},
                                   "By language"),
    }
    html = _template().render(s=summary, plots=plots, pct=pct, table=two_sided_table)
    return atomic_write_text(out / "report.html", html)
