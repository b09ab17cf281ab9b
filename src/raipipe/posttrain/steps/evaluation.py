"""The closing steps: select a checkpoint on held-out two-sided metrics, confirm it on datasets the
selection never saw, export it, and write the report. Evaluations resume through the response cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from raipipe.judges.refusal import FeatureRefusalJudge
from raipipe.models.base import GenerationParams
from raipipe.posttrain.confirm import Confirmation, check_disjoint, confirm_selection
from raipipe.posttrain.export import export_checkpoint
from raipipe.posttrain.ood import OutOfDistribution, measure_out_of_distribution
from raipipe.posttrain.report import write_posttrain_report
from raipipe.posttrain.select import Selection, select_checkpoint
from raipipe.posttrain.steps.base import Step, StepContext, StepOutput
from raipipe.posttrain.steps.data import RankOutput, SampleOutput
from raipipe.posttrain.steps.training import RewardModelOutput, TrainOutput

console = Console(stderr=True)
AFTER_THE_CHOICE = {"confirm_datasets", "ood_datasets", "ood_limit"}  # select settings that never change the choice


class SelectOutput(StepOutput):
    path: Path
    selection: Selection


class ConfirmOutput(StepOutput):
    confirmation: Confirmation | None = None


class OutOfDistributionOutput(StepOutput):
    ood: OutOfDistribution | None = None


class ExportOutput(StepOutput):
    model_dir: Path | None = None


class ReportOutput(StepOutput):
    summary_path: Path
    report_path: Path


def eval_args(ctx: StepContext) -> dict[str, Any]:
    """How selection and confirmation evaluate: same baseline, store, judge, token budget and limit."""
    sel = ctx.config.select
    # the ranking judge scores the same answers too, so the report shows how far the two judges agree
    return {"baseline_model": ctx.config.model, "store": ctx.config.store_url, "judge": sel.build_judge(),
            "second_judge": FeatureRefusalJudge(), "params": GenerationParams(max_new_tokens=sel.max_new_tokens),
            "limit": sel.limit}


def _eval_settings(ctx: StepContext) -> dict[str, Any]:
    return {"baseline": ctx.config.model, "store": ctx.config.store_url,
            "select": ctx.config.select.model_dump(mode="json", exclude=AFTER_THE_CHOICE)}


class SelectStep(Step):
    """Baseline and every checkpoint on `select.datasets`, then the two-sided rule picks one (or none)."""

    name = "select"
    inputs = (TrainOutput,)
    output = SelectOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        return _eval_settings(ctx)

    def run(self, ctx: StepContext) -> SelectOutput:
        sel, path = ctx.config.select, ctx.out / "selection.json"
        selection = select_checkpoint(ctx.get(TrainOutput).run_dir, datasets=sel.datasets, out=path, rule=sel.rule,
                                      lora_scales=sel.lora_scales, max_graded=sel.max_graded,
                                      probe_margin=sel.probe_margin, grade_final=sel.grade_final, **eval_args(ctx))
        console.print(f"selected {selection.chosen}: " + " ".join(selection.reasons))
        return SelectOutput(path=path, selection=selection)


class ConfirmStep(Step):
    """Baseline and chosen checkpoint on `select.confirm_datasets` (nothing to do when none are set)."""

    name = "confirm"
    inputs = (TrainOutput, SelectOutput)
    output = ConfirmOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        return _eval_settings(ctx) | {"confirm_datasets": ctx.config.select.confirm_datasets}

    def check(self, ctx: StepContext) -> None:
        sel = ctx.config.select
        if sel.confirm_datasets:
            check_disjoint(sel.datasets, sel.confirm_datasets)

    def run(self, ctx: StepContext) -> ConfirmOutput:
        datasets = ctx.config.select.confirm_datasets
        if not datasets:
            return ConfirmOutput()
        conf = confirm_selection(ctx.get(SelectOutput).selection, ctx.get(TrainOutput).run_dir, datasets,
                                 out=ctx.out / "confirmation.json", **eval_args(ctx))
        console.print(f"confirmed on {', '.join(conf.datasets)}: {conf.line()}")
        return ConfirmOutput(confirmation=conf)


class OutOfDistributionStep(Step):
    """Baseline and chosen model on each of `select.ood_datasets`, apart (nothing to do when none are set)."""

    name = "ood"
    inputs = (TrainOutput, SelectOutput)
    output = OutOfDistributionOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        sel = ctx.config.select
        return _eval_settings(ctx) | {"ood_datasets": sel.ood_datasets, "ood_limit": sel.ood_limit}

    def run(self, ctx: StepContext) -> OutOfDistributionOutput:
        sel = ctx.config.select
        if not sel.ood_datasets:
            return OutOfDistributionOutput()
        settings = eval_args(ctx) | {"limit": sel.ood_limit}
        ood = measure_out_of_distribution(ctx.get(SelectOutput).selection, ctx.get(TrainOutput).run_dir,
                                          sel.ood_datasets, ctx.out / "ood", **settings)
        for r in ood.results:
            if r.confirmation is None:
                console.print(f"[yellow]out of distribution: {r.dataset} not measured: {r.not_measured}[/]")
            else:
                console.print(f"out of distribution, {r.dataset}: {r.confirmation.line()}")
        return OutOfDistributionOutput(ood=ood)


class ExportStep(Step):
    """The chosen checkpoint as servable adapter and merged directories (nothing when the baseline is kept)."""

    name = "export"
    inputs = (TrainOutput, SelectOutput)
    output = ExportOutput

    def run(self, ctx: StepContext) -> ExportOutput:
        selection = ctx.get(SelectOutput).selection
        if selection.kept_baseline:
            console.print("[yellow]no checkpoint met the selection rule: the baseline is kept, nothing exported[/]")
            return ExportOutput()
        target = ctx.out / "model"
        export_checkpoint(ctx.get(TrainOutput).run_dir / selection.chosen, target, overwrite=True)
        return ExportOutput(model_dir=target)


class ReportStep(Step):
    """posttrain_summary.json and report.html: before/after per pillar, paired tests, curves, the choice."""

    name = "report"
    inputs = (SampleOutput, RankOutput, RewardModelOutput, TrainOutput, SelectOutput, ConfirmOutput,
              OutOfDistributionOutput, ExportOutput)
    output = ReportOutput

    def run(self, ctx: StepContext) -> ReportOutput:
        write_posttrain_report(ctx, ctx.get(SampleOutput).batch_id, ctx.get(RewardModelOutput).metrics,
                               ctx.get(TrainOutput).run_dir, ctx.get(SelectOutput).selection,
                               ctx.get(ExportOutput).model_dir, ctx.get(ConfirmOutput).confirmation,
                               ctx.get(OutOfDistributionOutput).ood)
        return ReportOutput(summary_path=ctx.out / "posttrain_summary.json", report_path=ctx.out / "report.html")
