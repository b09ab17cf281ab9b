"""The post-training report: before/after two-sided rates per pillar with intervals, reward-model
accuracy, training curves, the selected checkpoint and why — as JSON and one self-contained HTML file."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from jinja2 import Environment
from rich.table import Table
from sqlalchemy import func, select

from raipipe.evaluate.compare import compare_items
from raipipe.evaluate.metrics import summarise
from raipipe.evaluate.runner import load_scored_items
from raipipe.judges.calibrate import agreement
from raipipe.judges.calibration_cache import cached_calibration
from raipipe.posttrain.refusal_reasons import refusal_reasons
from raipipe.posttrain.refusal_templates import load_templates
from raipipe.report.html import pct, two_sided_table
from raipipe.report.plots import compare_bars, curves_plot
from raipipe.store.posttrain_tables import Candidate, Ranking


def _items(sessions, run_id: str | None, judge_id: str):
    return load_scored_items(sessions, run_id, judge_id) if run_id else None


def _paired(before_items, after_items, same_model: bool, confusion=None) -> dict | None:
    """Exact McNemar on the prompts both models answered: the honest test of 'fewer violations'; with the
    judge's calibration, also whether the difference survives the judge's own error."""
    if same_model or before_items is None or after_items is None:
        return None
    return {k: v.model_dump(mode="json") for k, v in compare_items(before_items, after_items, confusion).items()}


def judges_agreement(sessions, run_ids: dict[str, str | None], judge_id: str, second_id: str | None) -> dict | None:
    """How far the grading judge and the second judge agree on the same answers, per evaluated model."""
    if not second_id:
        return None
    out = {}
    for name, run_id in run_ids.items():
        if not run_id:
            continue
        first = {i.record_id: i.verdict for i in load_scored_items(sessions, run_id, judge_id)}
        second = {i.record_id: i.verdict for i in load_scored_items(sessions, run_id, second_id)}
        shared = sorted(set(first) & set(second))
        if not shared:
            continue
        cal = agreement([first[i] for i in shared], [second[i] for i in shared], judge_id=second_id,
                        source=f"verdicts of {judge_id}")
        binary = cal.binary_agreement.model_dump() if cal.binary_agreement else None  # refusal verdicts only
        out[name] = {"n": cal.n, "exact": cal.accuracy.model_dump(), "binary": binary,
                     "kappa": cal.kappa, "confusion": cal.confusion}
    return {"judge": judge_id, "second_judge": second_id, "runs": out} if out else None


def _training_data(sessions, batch_id: str, out: Path, run_dir: Path) -> dict:
    """What the optimiser learned from: candidates by origin and label, the pair counts and the pairs
    the trainer saw (after the decisive filter, the per-prompt strategy and pair weights)."""
    with sessions() as s:
        rows = s.execute(select(Candidate.origin, Candidate.label, func.count()).where(Candidate.batch_id == batch_id)
                         .group_by(Candidate.origin, Candidate.label)).all()
    origins: dict[str, dict[str, int]] = {}
    for origin, label, n in rows:
        origins.setdefault(origin, {})[label] = n
    lineage_file = out / "pairs" / "lineage.json"
    pairs = json.loads(lineage_file.read_text(encoding="utf-8")) if lineage_file.exists() else {}
    run_lineage = run_dir / "lineage.json"
    lineage = json.loads(run_lineage.read_text(encoding="utf-8")) if run_lineage.exists() else {}
    return {"candidates_by_origin": origins, "pair_counts": pairs.get("counts"),
            "pair_stats": pairs.get("pair_stats"), "trained_on": lineage.get("pair_mix"),
            "reason_pairs": lineage.get("reason_pairs"), "left_out": lineage.get("left_out")}


def _json_or_none(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _independence_warning(sessions, batch_id: str, judge_id: str) -> str | None:
    """A warning when the evaluation judge also ranked the training candidates (AI feedback)."""
    with sessions() as s:
        raters = set(s.scalars(select(Ranking.rater_id).where(Ranking.batch_id == batch_id,
                                                               Ranking.rater_kind == "ai").distinct()))
    if not judge_id or not any(judge_id in r for r in raters):
        return None
    return (f"The judge that scored these evaluations ({judge_id}) also produced the AI-feedback rankings the "
            "model was trained on, so the after-numbers are not independent of the training signal: confirm them "
            "with another judge (select.judge / select.judge_model, e.g. the rubric judge on a stronger model) or "
            "blind human labels.")


def _confirmation(sessions, confirmation) -> dict | None:
    """The confirmation's before/after with its own paired test (None when no confirm_datasets)."""
    if confirmation is None:
        return None
    paired = None
    if confirmation.after is not None:  # the baseline kept: nothing to pair, so no items to load
        paired = _paired(_items(sessions, confirmation.baseline.run_id, confirmation.judge),
                         _items(sessions, confirmation.after.run_id, confirmation.judge), same_model=False)
    return {**confirmation.model_dump(mode="json"), "paired_test": paired}


def _out_of_distribution(sessions, ood) -> list[dict] | None:
    """Each out-of-distribution dataset's before/after with its paired test, or why it was not measured."""
    if ood is None:
        return None
    return [{"dataset": r.dataset, "not_measured": r.not_measured, "limit": ood.limit,
             "confirmation": _confirmation(sessions, r.confirmation)} for r in ood.results]


def write_posttrain_report(pipe, batch_id: str, reward_model: dict | None, run_dir: Path, selection,
                           model_dir: Path | None, confirmation=None, ood=None) -> dict:
    from raipipe.posttrain.probe import read_curves  # lazy: probe imports transformers

    judge_id = selection.context.get("judge", "")
    judge = pipe.config.select.build_judge()
    calibration = cached_calibration(judge) if judge.judge_id == judge_id else None
    confusion = calibration.confusion if calibration else None
    chosen = next((c for c in selection.candidates if c.name == selection.chosen), selection.baseline)
    before_items = _items(pipe.sessions, selection.baseline.run_id, judge_id)
    after_items = _items(pipe.sessions, chosen.run_id, judge_id)
    before = summarise(before_items, confusion) if before_items is not None else None
    after = summarise(after_items, confusion) if after_items is not None else None
    curves_file = run_dir / "curves.jsonl"
    curves = read_curves(curves_file) if curves_file.exists() else []
    cfg = pipe.config
    summary = {
        "config": cfg.model_dump(mode="json"),
        "batch_id": batch_id,
        "feedback": "AI feedback (judges ranked the candidates)" if cfg.rank.mode == "ai"
        else f"human rankings ({cfg.rank.mode})",
        "reward_model": reward_model,
        "reward_ablation": _json_or_none(run_dir / "reward_ablation.json"),
        "reward_trained_with": ((_json_or_none(run_dir / "lineage.json") or {}).get("reward") or {}).get("config"),
        "algorithm": cfg.algorithm,
        "selection": selection.model_dump(mode="json"),
        "before": before.model_dump(mode="json") if before else None,
        "after": after.model_dump(mode="json") if after else None,
        "curves": curves,
        "model_dir": str(model_dir) if model_dir else None,
        "policy_pack": pipe.pack.ref,
        "paired_test": _paired(before_items, after_items, same_model=chosen is selection.baseline,
                               confusion=confusion),
        "judge_calibration": calibration.model_dump(mode="json") if calibration else None,
        "judges_agreement": judges_agreement(pipe.sessions, {"baseline": selection.baseline.run_id,
                                                              chosen.name: chosen.run_id},
                                             judge_id, selection.context.get("second_judge")),
        # every graded model, so the reasons a trained model learned show even when the baseline is kept
        "refusal_reasons": refusal_reasons(pipe.sessions, {"baseline": selection.baseline.run_id,
                                                            **{c.name: c.run_id for c in selection.candidates}},
                                           judge_id, load_templates(cfg.sample.refusal_templates)[0]),
        "training_data": _training_data(pipe.sessions, batch_id, Path(cfg.out), run_dir),
        "independence": _independence_warning(pipe.sessions, batch_id, judge_id),
        "confirmation": _confirmation(pipe.sessions, confirmation),
        "out_of_distribution": _out_of_distribution(pipe.sessions, ood),
    }
    out = Path(cfg.out)
    (out / "posttrain_summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    plots = {}
    if before and after:
        plots["pillars"] = compare_bars(before.by_pillar, after.by_pillar, "Before vs after, by pillar (95 % CI)")
    if curves:
        plots["curves"] = curves_plot(curves)
    text = (resources.files("raipipe") / "resources" / "templates" / "posttrain.html.j2").read_text(encoding="utf-8")
    html = Environment(autoescape=True).from_string(text).render(
        s=summary, sel=selection, before=before, after=after, chosen=chosen, plots=plots, pct=pct,
        table=two_sided_table)
    (out / "report.html").write_text(html, encoding="utf-8")
    return summary


def _before_after(summary: dict, confirmed: bool) -> tuple[dict, dict, str, list[str], str, dict]:
    """(baseline, chosen, judge, datasets, label, paired test) from the selection or from the confirmation."""
    sel = summary["selection"]
    if confirmed:
        conf = summary["confirmation"]
        return (conf["baseline"], conf["after"] or conf["baseline"], conf["judge"], conf["datasets"],
                f"confirmed ({conf['chosen']}, chosen on {', '.join(conf['selection_datasets'])})",
                conf.get("paired_test") or {})
    base = sel["baseline"]
    chosen = next((c for c in sel["candidates"] if c["name"] == sel["chosen"]), base)
    return (base, chosen, sel["context"].get("judge", "?"), sel["context"].get("datasets", []),
            f"selected ({sel['chosen']})", summary.get("paired_test") or {})


def before_after_table(summary: dict, title: str, wall_seconds: float | None = None, confirmed: bool = False):
    """A rich table of the run's numbers: violation and over-refusal before/after, with n, CI and the judge,
    and the goals of the config's `targets` block beside them (no goal column when it sets none).

    `confirmed` shows the confirmation datasets' numbers (chosen elsewhere) instead of the selection's."""
    base, chosen, judge, datasets, label, paired = _before_after(summary, confirmed)

    def fmt(r: dict) -> str:
        return "n/a" if r["rate"] is None else f"{r['rate']:.1%} [{r['low']:.1%}, {r['high']:.1%}] n={r['n']}"

    b, a = base["violation"]["rate"], chosen["violation"]["rate"]
    rel = 1 - a / b if b and a is not None else 0.0
    d_over = (chosen["over_refusal"]["rate"] or 0.0) - (base["over_refusal"]["rate"] or 0.0)
    targets = summary.get("config", {}).get("targets") or {}
    goal_v, goal_o, goal_t = (targets.get(k) for k in ("violation_reduction", "over_refusal_rise", "wall_minutes"))
    table = Table(title=f"{title} — judge {judge}, {', '.join(datasets)}")
    for col in ("measure", "baseline", label, "change", *(["goal"] if any((goal_v, goal_o, goal_t)) else [])):
        table.add_column(col)
    p_v = f", McNemar p={paired['violation']['p_value']:.2g}" if "violation" in paired else ""
    p_o = f", McNemar p={paired['over_refusal']['p_value']:.2g}" if "over_refusal" in paired else ""

    def row(*cells: str) -> None:  # the goal cell only where a goal column exists
        table.add_row(*cells[: len(table.columns)])

    row("violation rate (harmful prompts)", fmt(base["violation"]), fmt(chosen["violation"]),
        f"{rel:+.0%} relative reduction{p_v}", f">= {goal_v:.0%} reduction" if goal_v else "")
    row("over-refusal rate (benign look-alikes)", fmt(base["over_refusal"]), fmt(chosen["over_refusal"]),
        f"{d_over * 100:+.1f} points{p_o}", f"<= +{goal_o * 100:g} points" if goal_o is not None else "")
    if wall_seconds is not None:
        row("wall time", "", f"{wall_seconds / 60:.1f} min", "", f"<= {goal_t:g} min" if goal_t else "")
    return table
