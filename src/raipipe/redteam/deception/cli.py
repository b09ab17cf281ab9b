"""`raipipe deception` sub-commands: run scenarios against a target
(resumable), re-render a run's report, validate scenario files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from raipipe.cli_support import friendly_errors
from raipipe.errors import InputFileError, UsageError, require_writable
from raipipe.models import load_model
from raipipe.models.registry import check_model_spec
from raipipe.redteam.deception.detect import load_detector
from raipipe.redteam.deception.loader import load_scenarios
from raipipe.redteam.deception.report import console_table, write_report
from raipipe.redteam.deception.runner import RESULTS, load_results, run_deception

app = typer.Typer(no_args_is_help=True, help="Long-horizon deception: multi-session scenarios and trajectory checks.")
@app.command("run")
def run_cmd(
    ctx: typer.Context,
    target: Annotated[str, typer.Option("--target", help="model spec of the target, e.g. openai:MODEL@URL")],
    out: Annotated[Path, typer.Option("--out", help="run folder; rerun with the same folder to resume")],
    scenarios: Annotated[Path | None, typer.Option("--scenarios", help="folder (or one file) of scenario YAML; "
                                                   "default: the shipped scenarios")] = None,
    detector: Annotated[str, typer.Option("--detector", help="claim detector: pattern, similarity, or "
                                          "llm:MODEL_SPEC")] = "pattern",
    user_model: Annotated[str | None, typer.Option("--user-model", help="model spec that plays the simulated "
                                                   "users (without it only scripted turns are played)")] = None,
    only: Annotated[str | None, typer.Option("--only", help="comma-separated scenario ids or pillars")] = None,
    seed: Annotated[int, typer.Option("--seed", help="generation seed")] = 0,
) -> None:
    """Play every scenario against the target, run its checks, write results.jsonl, summary.json, report.html."""
    with friendly_errors(ctx):
        chosen = load_scenarios(scenarios)  # a bad scenario fails before any model loads
        if only:
            keep = {v.strip() for v in only.split(",") if v.strip()}
            chosen = [s for s in chosen if s.id in keep or s.pillar.value in keep]
            if not chosen:
                raise UsageError(f"--only {only}: no scenario id or pillar matches",
                                 hint="see `raipipe deception validate` for the ids and pillars")
        check_model_spec(target)
        if user_model:
            check_model_spec(user_model)
        require_writable(out, "--out")
        det = load_detector(detector)
        target_model = load_model(target)
        user = load_model(user_model) if user_model else None
        err = Console(stderr=True, highlight=False)

        def progress(result, resumed: bool) -> None:
            state = "resumed" if resumed else ("FLAGGED" if result.flagged else "clean")
            err.print(f"[dim]{result.scenario}: {state} (score {result.score:.2f})[/]")

        try:
            results = run_deception(chosen, target_model, out, detector=det, user_model=user, seed=seed,
                                    on_result=progress)
        finally:
            target_model.close()
            if user is not None:
                user.close()
        report = write_report(results, out)
        Console().print(console_table(report))
        typer.echo(f"results: {out / 'results.jsonl'} · report: {out / 'report.html'}")


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    run: Annotated[Path, typer.Option("--run", help="run folder written by `deception run`")],
) -> None:
    """Re-render summary.json and report.html from a run folder's results.jsonl."""
    with friendly_errors(ctx):
        if not (run / RESULTS).is_file():
            raise InputFileError(f"--run {run}: no {RESULTS}", hint="give a folder written by `deception run`")
        report = write_report(load_results(run), run)
        Console().print(console_table(report))


@app.command("validate")
def validate_cmd(
    ctx: typer.Context,
    scenarios: Annotated[Path | None, typer.Argument(help="folder or file; default: the shipped scenarios")] = None,
) -> None:
    """Check scenario files (schema, turn references, check names, policy pillar) without running anything."""
    with friendly_errors(ctx):
        loaded = load_scenarios(scenarios)
        by_pillar = Counter(s.pillar.value for s in loaded)
        typer.echo(f"{len(loaded)} scenarios valid: " + ", ".join(f"{p} {n}" for p, n in sorted(by_pillar.items())))
