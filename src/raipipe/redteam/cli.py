"""`raipipe redteam` sub-commands: run attacks (resumable), red team by hand in a web page, promote
findings to a dataset version, report a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from raipipe.cli_support import friendly_errors
from raipipe.data.specs import resolve_dataset
from raipipe.errors import InputFileError, UsageError, require_writable
from raipipe.judges import load_judge
from raipipe.models import load_model
from raipipe.models.base import GenerationParams
from raipipe.models.registry import check_model_spec
from raipipe.policy import load_pack
from raipipe.redteam.budget import AllocatorConfig
from raipipe.redteam.strategies import STRATEGIES

if TYPE_CHECKING:
    from raipipe.redteam.run import RunSummary

app = typer.Typer(no_args_is_help=True, help="Red teaming: attack a target (or by hand), promote findings, report.")


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _strategy_options(path: Path | None) -> dict:
    if path is None:
        return {}
    if not path.is_file():
        raise InputFileError(f"--strategy-config {path}: no such file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError(f"--strategy-config {path}: expected a mapping of strategy name to its config fields",
                         hint="e.g. 'converter_sweep: {samples: 2}'")
    return data


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    target: Annotated[str, typer.Option("--target", help="model spec of the target, e.g. openai:MODEL@URL")],
    out: Annotated[Path, typer.Option("--out", help="run folder; rerun with the same folder to resume")],
    strategies: Annotated[str, typer.Option("--strategies", help="comma-separated (see `raipipe list attacks`)")]
    = "converter_sweep",
    budget: Annotated[int, typer.Option("--budget", min=1, help="target queries per seed and strategy")] = 20,
    seeds: Annotated[str, typer.Option("--seeds", help="dataset spec of seed prompts (harmful ones are "
                                       "attacked; benign partners make the twins)")] = "seed",
    judge: Annotated[str, typer.Option("--judge", help="judge name (see `raipipe list judges`)")] = "refusal",
    store: Annotated[str | None, typer.Option("--store", help="store path or URL (default: OUT/store.sqlite)")]
    = None,
    attacker: Annotated[str | None, typer.Option("--attacker", help="model spec of the attacker model")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="attacks in flight")] = 8,
    all_seeds: Annotated[bool, typer.Option("--all-seeds", help="attack every harmful seed, not only those the "
                                            "target refuses when asked plainly")] = False,
    max_seeds: Annotated[int | None, typer.Option("--max-seeds", min=1, help="attack at most N seeds")] = None,
    strategy_config: Annotated[Path | None, typer.Option("--strategy-config", help="YAML: strategy -> config")]
    = None,
    allocate: Annotated[int | None, typer.Option("--allocate", min=1, help="attack N (strategy, seed) units "
                                                 "placed by a bandit over policy × strategy (thin coverage first, "
                                                 "then high yield), instead of every strategy on every seed")] = None,
    history: Annotated[list[Path] | None, typer.Option("--history", help="earlier run folder whose attempts "
                                                       "count as coverage for --allocate (repeatable)")] = None,
    allocator: Annotated[str, typer.Option("--allocator", help="thompson | ucb (with --allocate)")] = "thompson",
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Attack seed prompts with the given strategies; every attempt goes to OUT/attacks.jsonl and the store.
    With --allocate, the budget goes where earlier runs (--history) left coverage thin or found most."""
    with friendly_errors(ctx):
        from raipipe.redteam.run import RunOptions, run_redteam

        names = _checked_strategies(strategies, target, attacker)
        require_writable(out, "--out")
        _check_allocation(allocate, history or [], allocator)
        options = RunOptions(concurrency=concurrency, seed_filter="all" if all_seeds else "refused",
                             max_seeds=max_seeds, strategy_options=_strategy_options(strategy_config), seeds_spec=seeds,
                             allocate=allocate, history=[str(h) for h in history or []],
                             allocator=AllocatorConfig(method="ucb" if allocator == "ucb" else "thompson"))
        _, records = resolve_dataset(seeds)
        judge_obj = load_judge(judge)
        target_model = load_model(target)
        attacker_model = load_model(attacker) if attacker else None
        try:
            summary = run_redteam(target_model, records, names, judge_obj, budget, out, store,
                                  attacker=attacker_model, options=options, progress=not quiet)
        finally:
            target_model.close()
            if attacker_model is not None:
                attacker_model.close()
        _print_summary(summary)


def _check_allocation(allocate: int | None, history: list[Path], allocator: str) -> None:
    """--history and --allocator need --allocate; every history folder must be a red-team run."""
    if (history or allocator != "thompson") and not allocate:
        raise UsageError("--history and --allocator only apply with --allocate N", hint="add --allocate N")
    if allocator not in ("thompson", "ucb"):
        raise UsageError(f"--allocator {allocator!r} is not one of thompson, ucb", hint="--allocator thompson")
    for run_dir in history:
        if not (run_dir / "attacks.jsonl").is_file():
            raise InputFileError(f"--history {run_dir}: no attacks.jsonl there", hint="give a red-team run folder")


def _checked_strategies(strategies: str, target: str, attacker: str | None) -> list[str]:
    """The strategy names, after checking them and the model specs: a typo fails before any model loads."""
    names = _names(strategies)
    if not names:
        raise UsageError("--strategies is empty", hint="e.g. --strategies converter_sweep")
    for name in names:
        STRATEGIES.get(name)
    check_model_spec(target)
    if attacker:
        check_model_spec(attacker)
    return names


def _print_summary(summary: RunSummary) -> None:
    table = Table(title=f"red-team run {summary.run_id}")
    table.add_column("")
    table.add_column("", justify="right")
    for key in ("seeds_attacked", "units_total", "units_skipped", "units_failed", "records_new",
                "records_total", "target_queries", "replayed_queries"):
        table.add_row(key.replace("_", " "), str(getattr(summary, key)))
    for outcome, n in summary.outcomes.items():
        table.add_row(f"outcome {outcome}", str(n))
    Console().print(table)
    if summary.units_failed:
        typer.echo(f"{summary.units_failed} unit(s) failed; rerun the same command to retry them", err=True)


@app.command("promote")
def promote_cmd(
    ctx: typer.Context,
    run: Annotated[list[Path], typer.Option("--run", help="run folder(s) to promote (repeat the flag)")],
    out: Annotated[Path, typer.Option("--out", help="dataset root; writes the next version vN under it")],
    judge: Annotated[str | None, typer.Option("--judge", help="re-judge findings with this violation judge")] = None,
    specificity: Annotated[bool, typer.Option("--specificity/--no-specificity",
                                              help="rate harm specificity (when its model is available)")] = True,
    attacker: Annotated[str | None, typer.Option("--attacker", help="attacker model spec, for twins of findings "
                                                 "whose converters called one")] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", min=0.0, max=1.0,
                                                 help="share of seed families held out")] = 0.3,
) -> None:
    """Turn a run's successful attacks (plus benign twins) into the next version of the findings dataset."""
    with friendly_errors(ctx):
        from raipipe.redteam.findings import PromoteConfig, promote

        require_writable(out, "--out")
        attacker_model = load_model(attacker) if attacker else None
        manifest = promote(run, out, judge=load_judge(judge) if judge else None,
                           rater=_rater() if specificity else None, attacker=attacker_model,
                           config=PromoteConfig(test_fraction=test_fraction))
        c = manifest.counts
        typer.echo(f"v{manifest.version} (parent {manifest.parent_version or '-'}): {c['new_findings']} new findings, "
                   f"{c['dropped_duplicates']} duplicates dropped, {c['rejected_by_judge']} rejected by the judge; "
                   f"{c['rows']} rows in {out / f'v{manifest.version}'}")
        typer.echo(json.dumps(c["by_split"]))


def _rater():
    """The specificity judge if its model loads here; otherwise promotion goes on without it."""
    try:
        from raipipe.judges.specificity import SpecificityJudge

        judge = SpecificityJudge()
        judge.classifier  # noqa: B018 - load now, so a missing model is reported once, up front
        return judge
    except Exception as exc:  # noqa: BLE001 - optional stage: say why and continue
        typer.echo(f"note: harm-specificity judge unavailable ({type(exc).__name__}: {exc}); skipping it", err=True)
        return None


@app.command("web")
def web_cmd(
    ctx: typer.Context,
    target: Annotated[str, typer.Option("--target", help="model spec of the target to chat with")],
    out: Annotated[Path, typer.Option("--out", help="run folder of the findings; serve it again to carry on")],
    policy_pack: Annotated[Path | None, typer.Option("--policy-pack", help="policy pack directory the flags "
                                                     "refer to (default: the shipped pack)")] = None,
    store: Annotated[str | None, typer.Option("--store", help="store path or URL (default: OUT/store.sqlite)")]
    = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="longest reply of the target")]
    = 256,
    host: Annotated[str, typer.Option("--host", help="bind address (the page has no login: keep it local)")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port")] = 8766,
) -> None:
    """Human red teaming: chat with the target in a web page and flag the turns that break a policy.

    Open http://HOST:PORT/?red_teamer=YOUR_ID; each flag is a finding in OUT, "human red team" provenance.

    `raipipe redteam promote --run OUT` adds the findings to the dataset, as it does an automated run's."""
    with friendly_errors(ctx):
        from raipipe.redteam.web import HumanRun, serve

        check_model_spec(target)
        require_writable(out, "--out")
        pack = load_pack(policy_pack)
        model = load_model(target)
        try:
            run = HumanRun(out, model, pack, store=store, params=GenerationParams(max_new_tokens=max_new_tokens))
            typer.echo(f"red-team page on http://{host}:{port}/ (run {run.run_id}; findings in {out}; "
                       f"policies {pack.ref})")
            serve(run, host=host, port=port)
        finally:
            model.close()


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    run: Annotated[Path, typer.Option("--run", help="run folder")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file (default: RUN/report.html)")] = None,
) -> None:
    """Attack success per strategy and pillar (Wilson intervals), coverage heat map, transcripts."""
    with friendly_errors(ctx):
        from raipipe.redteam.report import console_table, load_run_report, render_html

        if not (run / "run.json").is_file():
            raise InputFileError(f"--run {run}: no run.json, so not a red-team run folder",
                                 hint="give the --out folder of `raipipe redteam run`")
        report, records = load_run_report(run)
        path = render_html(report, records, out or run / "report.html")
        Console().print(console_table(report))
        typer.echo(f"report: {path}")
