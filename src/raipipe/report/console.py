"""Terminal tables for summaries and comparisons (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from raipipe.evaluate.metrics import TwoSided
from raipipe.evaluate.stats import McNemar


def _cell(r) -> str:
    return "n/a" if r.rate is None else f"{r.rate:.1%} [{r.low:.0%}–{r.high:.0%}] n={r.n}"


def _corrected(c) -> str:
    if c is None or c.estimate is None:
        return "n/a"
    return f"{c.estimate:.1%} [{c.low:.0%}–{c.high:.0%}]"


def summary_table(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    m = summary["metrics"]
    table = Table(title=f"{summary['manifest']['model']} — judge {summary['judge']['id']}", show_lines=False)
    for col in ("group", "violation rate (harmful)", "with judge error", "over-refusal rate (benign)",
                "with judge error", "unscoreable"):
        table.add_column(col, justify="left" if col == "group" else "right")

    def add(name: str, g: dict, style: str | None = None) -> None:
        t = TwoSided.model_validate(g)
        table.add_row(name, _cell(t.violation), _corrected(t.violation_corrected), _cell(t.over_refusal),
                      _corrected(t.over_refusal_corrected), str(t.unscoreable_harmful + t.unscoreable_benign),
                      style=style)

    add("overall", m["overall"], style="bold")
    for k, v in m["by_pillar"].items():
        add(f"pillar: {k}", v)
    for k, v in m["by_language"].items():
        add(f"language: {k}", v)
    console.print(table)
    cal = summary["judge"].get("calibration")
    if cal:
        acc = cal["accuracy"]
        console.print(f"judge calibration: accuracy {acc['rate']:.1%} [{acc['low']:.1%}, {acc['high']:.1%}] "
                      f"on n={cal['n']} held-out labelled responses, kappa={cal['kappa']:.3f}")
    else:
        console.print("[yellow]judge not calibrated against human labels[/]")


def comparison_table(results: dict[str, McNemar], a: str, b: str, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"paired comparison (exact McNemar): A={a}  B={b}")
    for col in ("outcome", "pairs", "rate A", "rate B", "B − A", "bad only in A", "bad only in B", "p-value"):
        table.add_column(col, justify="right")
    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    for name, r in results.items():
        table.add_row(name, str(r.n_pairs), fmt(r.rate_a), fmt(r.rate_b),
                      "n/a" if r.difference is None else f"{r.difference:+.1%}", str(r.b), str(r.c), f"{r.p_value:.3g}")
    console.print(table)
    for name, r in results.items():
        je = r.judge_error
        if je is None or je.estimate is None:
            console.print(f"{name}: B − A with judge error n/a (no calibration of this judge found)", soft_wrap=True)
        else:
            where = "within" if je.within_judge_error else "beyond"
            console.print(f"{name}: B − A with judge error {je.fmt()}: {where} what judge error could produce",
                          soft_wrap=True)
    if any(r.judge_error and r.judge_error.within_judge_error and r.p_value < 0.05 for r in results.values()):
        console.print("[yellow]A difference the McNemar test calls significant is within what the judge's own "
                      "error could produce: confirm it with another judge or human labels.[/]")
