"""`raipipe rank`: rank sampled candidates — web page for people, JSONL for vendors, judges for AI feedback."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from raipipe.errors import StoreError, require_writable
from raipipe.judges.llm_judge import RubricJudge
from raipipe.models.registry import check_model_spec

console = Console()
app = typer.Typer(no_args_is_help=True, help="Rank candidate responses (people, vendors, or AI feedback).")

STORE = typer.Option(..., "--store", "-s", metavar="DB", help="store: a SQLite path or a database URL")


def _existing_store(store: str, batch: str | None = None):  # noqa: ANN202 - a sessionmaker
    """Open a store that must already exist (holding `batch`, if given); opening never creates one here."""
    from sqlalchemy import select

    from raipipe.store import open_store
    from raipipe.store.posttrain_tables import SampleBatch

    if "://" not in store and not Path(store).is_file():
        raise StoreError(f"--store {store}: no such store file",
                         hint="sample candidates first (`raipipe posttrain`) or try `raipipe rank demo --store DB`")
    sessions = open_store(store)
    if batch is not None:
        with sessions() as s:
            known = sorted(s.scalars(select(SampleBatch.id)))
        if batch not in known:
            raise StoreError(f"--batch {batch!r}: no such sample batch in {store}",
                             hint=f"choose one of {known}" if known else "this store holds no sample batches yet")
    return sessions


@app.command()
def serve(
    store: str = STORE,
    batch: str | None = typer.Option(None, "--batch", "-b", help="rank only this sample batch"),
    port: int = typer.Option(8765, "--port", "-p", help="port on 127.0.0.1"),
    host: str = typer.Option("127.0.0.1", "--host", help="bind address (the page has no login: keep it local)"),
) -> None:
    """Serve the ranking page: open http://127.0.0.1:PORT/?rater=YOUR_ID."""
    from raipipe.posttrain.ranking.web import serve as run

    _existing_store(store, batch)
    where = f"store {store}" + (f", batch {batch}" if batch else "")
    console.print(f"ranking page on [bold]http://{host}:{port}/[/] ({where})")
    run(store, batch_id=batch, host=host, port=port)


@app.command()
def export(
    store: str = STORE,
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file to write"),
    batch: str | None = typer.Option(None, "--batch", "-b"),
    kind: str | None = typer.Option(None, "--kind", help="human or ai (default: both)"),
) -> None:
    """Export rankings as JSONL (one line per rater x item; order by candidate id and by index)."""
    from raipipe.posttrain.ranking.jsonl import export_jsonl

    if kind not in (None, "human", "ai"):
        raise typer.BadParameter(f"--kind must be human or ai, got {kind!r}")
    require_writable(out, "--out", kind="file")
    with _existing_store(store, batch)() as s:
        n = export_jsonl(s, out, batch_id=batch, rater_kind=kind)
    console.print(f"wrote {n} rankings → {out}")


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="vendor JSONL"),
    store: str = STORE,
    strict: bool = typer.Option(False, help="write nothing when any line is rejected"),
) -> None:
    """Import rankings from JSONL; every line is reported as imported, replaced, skipped or rejected."""
    from raipipe.posttrain.ranking.jsonl import import_jsonl

    try:
        report = import_jsonl(_existing_store(store), file, strict=strict)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    for o in report.lines:
        if o.status == "rejected":
            console.print(f"[red]rejected[/] {o.reason}", highlight=False, soft_wrap=True)
        elif o.reason and o.status != "skipped":
            console.print(f"[yellow]{file}:{o.line}[/] {o.status}: {o.reason}", highlight=False, soft_wrap=True)
    console.print(report.summary(), highlight=False, soft_wrap=True)
    if report.rejected:
        raise typer.Exit(1)


@app.command()
def ai(
    store: str = STORE,
    batch: str = typer.Option(..., "--batch", "-b", help="sample batch to rank"),
    judge_model: str | None = typer.Option(None, "--judge-model", help="backend spec for a rubric judge that "
                                           "breaks ties within a behaviour tier (e.g. embedded:smollm2)"),
    only_missing: bool = typer.Option(False, help="rank only prompts these judges have not ranked yet"),
) -> None:
    """AI feedback: the refusal judge (and optionally a rubric judge) rank every prompt's candidates."""
    from raipipe.posttrain.ranking.ai_feedback import ai_rank

    sessions = _existing_store(store, batch)
    rubric = None
    if judge_model:
        check_model_spec(judge_model)

        rubric = RubricJudge(model=judge_model)
    report = ai_rank(sessions, batch, rubric_judge=rubric, only_missing=only_missing)
    console.print(f"AI feedback [bold]{report.rater_id}[/]: {report.items} prompts, {report.candidates} candidates, "
                  f"{report.statuses}", highlight=False, soft_wrap=True)
    for label, counts in report.verdicts.items():
        console.print(f"  {label} prompts — refusal-judge verdicts: {counts}", highlight=False, soft_wrap=True)


@app.command()
def agreement(
    store: str = STORE,
    batch: str | None = typer.Option(None, "--batch", "-b"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Agreement between human raters (Kendall tau, pair agreement, Kendall's W) and with AI feedback."""
    from raipipe.posttrain.ranking.agreement import agreement as compute
    from raipipe.posttrain.ranking.store_ops import list_rankings

    with _existing_store(store, batch)() as s:
        report = compute(list_rankings(s, batch_id=batch))
    if as_json:
        print(json.dumps(report.model_dump(), indent=2))
        return

    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:.2f}"

    table = Table("comparison", "items", "pairs of rankings", "mean tau", "pairs agree", "same best")
    rows = [("humans", report.human), ("humans vs AI", report.human_vs_ai)]
    rows += [(f"  vs {k}", v) for k, v in report.by_ai_rater.items()]
    rows += [(f"  rater {k} vs others", v) for k, v in report.per_rater.items()]
    for name, a in rows:
        table.add_row(name, str(a.n_items), str(a.n_comparisons), f(a.mean_tau), f(a.pair_agreement),
                      f(a.top1_agreement))
    console.print(table)
    console.print(f"Kendall's W (3+ human raters): {f(report.kendall_w.mean_w)} over {report.kendall_w.n_items} items")


@app.command()
def demo(store: str = STORE, batch: str = typer.Option("demo", "--batch", "-b")) -> None:
    """Add a tiny hand-written batch to a store, to try the ranking page without sampling a model."""
    from raipipe.posttrain.ranking.demo import seed_demo
    from raipipe.store import open_store

    seed_demo(open_store(store), batch)
    console.print(f"demo batch {batch!r} ready: raipipe rank serve --store {store} --batch {batch}")
