"""`raipipe eval` and `raipipe compare`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import typer
import yaml
from rich.console import Console

from raipipe.errors import InputFileError
from raipipe.evaluate.compare import compare_items
from raipipe.evaluate.config import EFFECTIVE_CONFIG, EvalConfig, Scaffolding, load_config, preflight
from raipipe.fileio import atomic_write_text
from raipipe.models.base import GenerationParams
from raipipe.report.console import comparison_table, summary_table

console = Console()


def _system_prompt(value: str | None) -> str | None:
    if value and value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise InputFileError(f"--system-prompt {value}: no such file", hint="give text, or @ an existing file")
        return path.read_text(encoding="utf-8")
    return value


def _explicit(ctx: typer.Context, values: Mapping[str, object]) -> dict[str, object]:
    """The EvalConfig fields set by flags typed on the command line (these override --config)."""
    given = {k for k in values if getattr(ctx.get_parameter_source(k), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}
    fields = {"model": "model", "dataset": "datasets", "judge": "judges", "judge_model": "judge_model",
              "limit": "limit", "store": "store", "out": "out", "name": "name", "on_long_prompt": "on_long_prompt"}
    out: dict[str, object] = {fields[k]: values[k] for k in fields if k in given}
    if "system_prompt" in given:
        prompt = values["system_prompt"]
        out["scaffolding"] = {"system_prompt": _system_prompt(prompt if isinstance(prompt, str) else None)}
    if "max_new_tokens" in given:
        out["params"] = {"max_new_tokens": values["max_new_tokens"]}
    return out


def eval_command(
    ctx: typer.Context,
    model: str = typer.Option("embedded:smollm2", "--model", "-m", metavar="SPEC",
                              help="embedded:smollm2 | hf:DIR | openai:MODEL@URL"),
    dataset: list[str] = typer.Option(["seed:test"], "--dataset", "-d", metavar="SPEC",
                                      help="seed:test | FILE.jsonl | xstest:PATH (repeat for several)"),
    judge: list[str] = typer.Option(["refusal"], "--judge", "-j", metavar="NAME",
                                    help="judges by name (see `raipipe list judges`); the first drives metrics"),
    judge_model: str | None = typer.Option(None, metavar="SPEC", help="backend spec for the rubric judge "
                                           "(required with --judge rubric)"),
    system_prompt: str | None = typer.Option(None, metavar="TEXT", help="system prompt text, or @FILE"),
    max_new_tokens: int = typer.Option(80, metavar="N", help="tokens generated per response"),
    limit: int | None = typer.Option(None, metavar="N", min=1, help="at most N records per dataset, stratified "
                                     "by pillar x label x language, pairs kept together"),
    store: str = typer.Option("raipipe.db", metavar="DB", help="SQLite path or SQLAlchemy URL (PostgreSQL too)"),
    out: Path = typer.Option(Path("out/eval"), metavar="DIR", help="writes summary.json, report.html and "
                             "effective-config.yaml here"),
    config: Path | None = typer.Option(None, metavar="FILE", help="YAML EvalConfig; flags given explicitly "
                                       "override its values"),
    on_long_prompt: str = typer.Option("truncate", metavar="[truncate|reject]", help="a prompt longer than "
                                       "max_prompt_chars is cut (reason recorded) or the run is refused"),
    name: str = typer.Option("", metavar="TEXT", help="a label for the run"),
) -> None:
    """Evaluate a model on datasets with judges; resumable (rerun the same command after a crash).

    Every input is checked before any model loads; the config actually used is saved as
    OUT/effective-config.yaml."""
    from raipipe.evaluate.runner import EvalRun
    from raipipe.report.html import render_report
    from raipipe.report.summary import build_summary, write_summary

    values = dict(model=model, dataset=dataset, judge=judge, judge_model=judge_model, system_prompt=system_prompt,
                  max_new_tokens=max_new_tokens, limit=limit, store=store, out=out, name=name,
                  on_long_prompt=on_long_prompt)
    if config:
        cfg = load_config(config, overrides=_explicit(ctx, values))
    else:
        cfg = EvalConfig(model=model, datasets=dataset, judges=judge, judge_model=judge_model,
                         scaffolding=Scaffolding(system_prompt=_system_prompt(system_prompt)),
                         params=GenerationParams(max_new_tokens=max_new_tokens), limit=limit, store=store,
                         # any other text fails EvalConfig's validation, which names the field
                         out=out, name=name, on_long_prompt=on_long_prompt)  # type: ignore[arg-type]
    preflight(cfg)
    run = EvalRun(cfg)
    run_id = run.execute()
    summary = build_summary(run)
    summary_table(summary, console)
    atomic_write_text(cfg.out / EFFECTIVE_CONFIG, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    console.print(f"run {run_id}: {write_summary(summary, cfg.out)}  {render_report(summary, cfg.out)}")


def compare_command(
    run_a: str = typer.Argument(..., help="run id (or a directory holding summary.json)"),
    run_b: str = typer.Argument(..., help="run id (or a directory holding summary.json)"),
    store: str = typer.Option("raipipe.db", help="the store both runs live in"),
    judge_id: str | None = typer.Option(None, help="judge id to compare on; default: each run's primary judge"),
) -> None:
    """Paired comparison of two runs on the prompts both scored (exact McNemar test)."""
    from sqlalchemy import select

    from raipipe.evaluate.runner import load_scored_items
    from raipipe.store.db import RunRow, open_store

    summaries = [json.loads(p.read_text()) for p in (Path(r) / "summary.json" for r in (run_a, run_b)) if p.exists()]

    def resolve(ref: str) -> str:
        p = Path(ref) / "summary.json"
        return json.loads(p.read_text())["run_id"] if p.exists() else ref

    sessions = open_store(store)
    ids = [resolve(run_a), resolve(run_b)]
    items = []
    for rid in ids:
        with sessions() as s:
            row = s.scalar(select(RunRow).where(RunRow.id == rid))
        if row is None:
            raise typer.BadParameter(f"no run {rid!r} in store {store}")
        used = judge_id or row.manifest["judges"][0]
        items.append(load_scored_items(sessions, rid, used))
    # the judge's calibration, from a run summary scored by that judge: differences then carry judge error
    cal = next((s["judge"]["calibration"] for s in summaries if (s["judge"].get("calibration") or {}).get("judge_id")
                == used), None)
    a, b = items
    comparison_table(compare_items(a, b, confusion=cal["confusion"] if cal else None), ids[0], ids[1], console)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
