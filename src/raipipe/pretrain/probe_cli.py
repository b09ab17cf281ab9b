"""Pretraining probe and continued-pretraining commands (mounted as `raipipe pretrain`):
`probe` compares checkpoints side by side; `train` runs continued pretraining with probes before/after."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from raipipe.errors import RaipipeError, UsageError, require_writable
from raipipe.judges.base import load_judge
from raipipe.models.registry import check_model_spec

CalibrationOption = Annotated[str, typer.Option(
    "--calibration", help="labelled set that measures the judge's error for the judge-corrected rows: probe-answers "
    "(people-labelled answers to this probe), judge (its own held-out set), a JSONL path, or none")]

app = typer.Typer(no_args_is_help=True, help="Pretraining-stage probes and continued pretraining.")


def _fail(exc: Exception) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {exc}", markup=True)
    return typer.Exit(code=getattr(exc, "exit_code", 1))


@app.command("probe")
def probe(
    model: Annotated[list[str], typer.Option("--model", help="model spec; repeat to compare checkpoints (the first "
                                             "is the baseline for deltas)")],
    out: Annotated[Path, typer.Option("--out", help="folder for report.json, report.html and per-model results")],
    label: Annotated[list[str] | None, typer.Option("--label", help="column name per --model, in order")] = None,
    judge: Annotated[str, typer.Option("--judge", help="registered judge for the sparse probes")] = "refusal",
    sparse: Annotated[bool, typer.Option("--sparse/--no-sparse", help="run the sparse-question probes")] = True,
    preference: Annotated[bool, typer.Option("--preference/--no-preference", help="score refusal vs answer "
                                             "openings by likelihood (local models)")] = True,
    frame: Annotated[str, typer.Option("--preference-frame", help="plain (the question alone) or fewshot")] = "plain",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=8, help="answer length")] = 64,
    languages: Annotated[str, typer.Option("--languages", help="comma-separated languages (default: all)")] = "",
    probe_dir: Annotated[Path | None, typer.Option("--probe-dir", help="probe YAML folder (default: shipped)")] = None,
    calibration: CalibrationOption = "probe-answers",
) -> None:
    """Perplexity per RAI pillar vs general text and sparse-question probes for each model, side by side."""
    from raipipe.pretrain.probes import (
        PreferenceSettings,
        ProbeConfig,
        SparseSettings,
        compare,
        console_table,
        run_probes,
        write_report,
    )

    labels = list(label or [])
    try:
        if labels and len(labels) != len(model):
            raise UsageError(f"{len(labels)} --label for {len(model)} --model", hint="give one label per model")
        for spec in model:
            check_model_spec(spec)
        require_writable(out, "--out")
        langs = [x.strip() for x in languages.split(",") if x.strip()] or None
        cfg = ProbeConfig(probe_dir=str(probe_dir) if probe_dir else None, run_sparse=sparse, languages=langs,
                          sparse=SparseSettings(max_new_tokens=max_new_tokens, judge=judge),
                          run_preference=preference,
                          preference=PreferenceSettings.model_validate({"frame": frame}),
                          calibration=calibration)
        judge_obj = None
        if sparse:
            judge_obj = load_judge(judge)
        judge_error = cfg.report_calibration(judge_obj)  # a bad --calibration fails before any probing
        results = []
        for i, spec in enumerate(model):
            name = labels[i] if labels else f"m{i}"
            results.append(run_probes(spec, name, cfg, judge=judge_obj))
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{name}.json").write_text(results[-1].model_dump_json(indent=2), encoding="utf-8")
    except (RaipipeError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    report = compare(results, judge_error)
    paths = write_report(report, out)
    con = Console(highlight=False, soft_wrap=True)
    con.print(console_table(report))
    con.print(f"report: {paths['json']} and {paths['html']}")


@app.command("regrade")
def regrade_cmd(
    results: Annotated[list[Path], typer.Option("--results", help="a stored probe result (e.g. probes/before.json); "
                                                "repeat to compare checkpoints (the first is the baseline)")],
    judge: Annotated[str, typer.Option("--judge", help="registered judge that scores the stored answers again")],
    out: Annotated[Path, typer.Option("--out", help="folder for the regraded results and their report")],
    probe_dir: Annotated[Path | None, typer.Option("--probe-dir", help="probe YAML folder the answers came from "
                                                   "(default: shipped)")] = None,
    calibration: CalibrationOption = "probe-answers",
) -> None:
    """Score stored sparse-probe answers again with another judge (no generation): the report as that judge
    reads it, and how often it agrees with the judge that scored them first."""
    from raipipe.pretrain.probes import (
        CheckpointProbes,
        ProbeConfig,
        compare,
        console_table,
        judge_agreement,
        load_questions,
        regrade,
        write_report,
    )

    con = Console(highlight=False, soft_wrap=True)
    try:
        require_writable(out, "--out")
        questions = load_questions(probe_dir)
        judge_obj = load_judge(judge)
        judge_error = ProbeConfig(calibration=calibration).report_calibration(judge_obj)
        firsts = [CheckpointProbes.model_validate_json(p.read_text(encoding="utf-8")) for p in results]
        regraded = [regrade(cp, judge_obj, questions) for cp in firsts]
        out.mkdir(parents=True, exist_ok=True)
        for cp in regraded:
            (out / f"{cp.label}.json").write_text(cp.model_dump_json(indent=2), encoding="utf-8")
    except (RaipipeError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    report = compare(regraded, judge_error)
    paths = write_report(report, out)
    con.print(console_table(report))
    for first, second in zip(firsts, regraded, strict=True):
        a = judge_agreement(first, second)
        rate = "n/a" if a.refusal_agreement is None else f"{a.refusal_agreement:.1%}"
        con.print(f"{first.label}: {judge} agrees with the first judge on refusal for {rate} of {a.both_scored} "
                  f"answers both scored; unscoreable only by the first {a.unscoreable_only_first}, only by "
                  f"{judge} {a.unscoreable_only_second}")
    con.print(f"report: {paths['json']} and {paths['html']}")


@app.command("train")
def train(
    config: Annotated[Path, typer.Option("--config", help="YAML/JSON file of a ContinuedPretrainConfig")],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Continued pretraining (LoRA or full) on a mixed corpus; resumes from the last checkpoint; probes
    the model before and after and writes the comparison report."""
    from raipipe.pretrain.probes import console_table
    from raipipe.pretrain.train import load_config, run_continued_pretraining

    try:
        cfg = load_config(config)
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result, report = run_continued_pretraining(cfg)  # the trainer prints its logs: keep stdout JSON
    except (RaipipeError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps({"result": result.model_dump(mode="json", exclude={"history"}),
                               "report": report.model_dump(mode="json", exclude={"checkpoints"}) if report else None}))
        return
    con = Console(highlight=False, soft_wrap=True)
    if report is not None:
        con.print(console_table(report))
    resumed = f", resumed from {result.resumed_from.name}" if result.resumed_from else ""
    con.print(f"{result.steps} steps on {result.n_blocks} blocks ({result.n_texts} texts){resumed} → "
              f"{result.final_dir}\nmodel spec: {result.final_spec}")
