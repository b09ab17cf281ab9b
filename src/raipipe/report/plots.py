"""Plots for reports, rendered to inline SVG so the HTML stays one self-contained file."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from raipipe.evaluate.metrics import TwoSided  # noqa: E402


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg"):]


MIN_VISIBLE = 0.008  # a 0 % bar is drawn this tall (outlined and labelled "0%"), so it never looks missing


def bar_heights(rates: list) -> list[float]:
    """Drawn heights: the rate, but at least MIN_VISIBLE when measured; a rate with no data (n=0) stays 0."""
    return [0.0 if r.rate is None else max(r.rate, MIN_VISIBLE) for r in rates]


def _draw_bars(ax, xs: list[float], rates: list, width: float, colour: str, label: str, **kw) -> None:
    """Filled bars with an outline, Wilson error bars, and the rate printed above each ("n/a" without data)."""
    err = [[(r.rate - r.low) if r.rate is not None else 0 for r in rates],
           [(r.high - r.rate) if r.rate is not None else 0 for r in rates]]
    ax.bar(xs, bar_heights(rates), width, color=colour, edgecolor=colour, linewidth=1.0, label=label, yerr=err,
           capsize=3, **kw)
    for x, r in zip(xs, rates, strict=True):
        top = 0.0 if r.rate is None else max(r.high or r.rate, r.rate)
        ax.text(x, top + 0.02, "n/a" if r.rate is None else f"{r.rate:.0%}", ha="center", va="bottom",
                fontsize=6.5, color="#333")


def two_sided_bars(groups: dict[str, TwoSided], title: str) -> str:
    """Violation and over-refusal per group with 95 % Wilson intervals, side by side."""
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) + 2), 3.6))
    width = 0.38
    for offset, attr, colour, label in (
        (-width / 2, "violation", "#c0392b", "violation rate (harmful prompts)"),
        (width / 2, "over_refusal", "#2471a3", "over-refusal rate (benign look-alikes)"),
    ):
        rates = [getattr(groups[n], attr) for n in names]
        _draw_bars(ax, [i + offset for i in range(len(names))], rates, width, colour, label, alpha=0.9)
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("rate (95 % Wilson CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig)


def compare_bars(before: dict[str, TwoSided], after: dict[str, TwoSided], title: str) -> str:
    """Before/after per group for both sides of the trade-off."""
    names = [n for n in before if n in after]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(names) + 3), 3.6), sharey=True)
    for ax, attr, name in ((axes[0], "violation", "violation"), (axes[1], "over_refusal", "over-refusal")):
        for offset, groups, colour, label in ((-0.2, before, "#999999", "before"), (0.2, after, "#1e8449", "after")):
            rates = [getattr(groups[n], attr) for n in names]
            _draw_bars(ax, [i + offset for i in range(len(names))], rates, 0.4, colour, label)
        ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=7, rotation=35,
                      ha="right")
        ax.set_title(name, fontsize=10)
        ax.set_ylim(0, 1.1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _svg(fig)


def curves_plot(rows: list[dict]) -> str:
    """Probe violation and over-refusal rates against the training step."""
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.plot(steps, _series(rows, "violation_rate"), "o-", color="#c0392b", label="violation (probe)")
    ax.plot(steps, _series(rows, "over_refusal_rate"), "s-", color="#2471a3", label="over-refusal (probe)")
    ax.set_xlabel("training step")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _svg(fig)


def _series(rows: list[dict], key: str) -> list[float]:
    """One value per row; a missing rate is NaN, which leaves a gap in the line."""
    return [float("nan") if r.get(key) is None else float(r[key]) for r in rows]
