"""`raipipe eval` and `raipipe compare`."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console

console = Console()


def _system_prompt(value: str | None) -> str | None:
    if value and value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


def eval_command(
    model: str = typer.Option("embedded:smollm2", "--model", "-m", help="embedded:smollm2 | hf:DIR | openai:MODEL@URL"),
    dataset: list[str] = typer.Option(["seed:test"], "--dataset", "-d", help="seed:test | FILE.jsonl | xstest:PATH"),
    judge: list[str] = typer.Option(["refusal"], "--judge", "-j", help="judges by name; the first drives metrics"),
    judge_model: str | None = typer.Option(None, help="backend spec for the rubric judge"),
    system_prompt: str | None = typer.Option(None, help="system prompt text, or @FILE"),
    max_new_tokens: int = typer.Option(80, help="tokens generated per response"),
    limit: int | None = typer.Option(None, help="at most N records per dataset (pairs kept together)"),
    store: str = typer.Option("raipipe.db", help="SQLite path or SQLAlchemy URL (PostgreSQL supported)"),
    out: Path = typer.Option(Path("out/eval"), help="writes summary.json and report.html here"),
    config: Path | None = typer.Option(None, help="YAML EvalConfig; command-line options are ignored then"),
    name: str = typer.Option("", help="a label for the run"),
) -> None:
    """Evaluate a model on datasets with judges; resumable (rerun the same command after a crash)."""
    from raipipe.evaluate.config import EvalConfig, Scaffolding
    from raipipe.evaluate.runner import EvalRun
    from raipipe.models.base import GenerationParams
    from raipipe.report.console import summary_table
    from raipipe.report.html import render_report
    from raipipe.report.summary import build_summary, write_summary

    if config:
        cfg = EvalConfig.model_validate(yaml.safe_load(config.read_text(encoding="utf-8")))
    else:
        cfg = EvalConfig(model=model, datasets=dataset, judges=judge, judge_model=judge_model,
                         scaffolding=Scaffolding(system_prompt=_system_prompt(system_prompt)),
                         params=GenerationParams(max_new_tokens=max_new_tokens), limit=limit, store=store,
                         out=out, name=name)
    run = EvalRun(cfg)
    run_id = run.execute()
    summary = build_summary(run)
    summary_table(summary, console)
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    console.print(f"run {run_id}: {write_summary(summary, cfg.out)}  {render_report(summary, cfg.out)}")


def compare_command(
    run_a: str = typer.Argument(..., help="run id (or a directory holding summary.json)"),
    run_b: str = typer.Argument(..., help="run id (or a directory holding summary.json)"),
    store: str = typer.Option("raipipe.db", help="the store both runs live in"),
    judge_id: str | None = typer.Option(None, help="judge id to compare on; default: each run's primary judge"),
) -> None:
    """Paired comparison of two runs on the prompts both scored (exact McNemar test)."""
    import json

    from sqlalchemy import select

    from raipipe.evaluate.compare import compare_items
    from raipipe.evaluate.runner import load_scored_items
    from raipipe.report.console import comparison_table
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
    comparison_table(compare_items(*items, confusion=cal["confusion"] if cal else None), ids[0], ids[1], console)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
