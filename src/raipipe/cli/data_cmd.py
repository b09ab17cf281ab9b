"""`raipipe data` commands: validate files, count datasets, import benchmarks, deduplicate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from raipipe.data.benchmarks import load_benchmark, registered_loaders
from raipipe.data.dedup import DedupResult, dedup
from raipipe.data.io import (
    FIELDS,
    DatasetError,
    count_by,
    dataset_hash,
    load_jsonl,
    quarantine_path,
    write_jsonl,
    write_lines,
    write_quarantine,
)
from raipipe.data.records import PromptRecord
from raipipe.data.seed import pair_summary
from raipipe.data.specs import SpecError, resolve_dataset
from raipipe.errors import require_writable

app = typer.Typer(no_args_is_help=True)

NearOpt = Annotated[
    float | None,
    typer.Option("--near", min=0.01, max=1.0, help="also drop near duplicates: char 5-gram Jaccard >= this"),
]


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(exc: Exception) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {exc}", markup=True)
    return typer.Exit(code=1)


def _dropped_path(out: Path) -> Path:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.dropped.jsonl")


def _report_dedup(con: Console, result: DedupResult, out: Path) -> None:
    """Say what was dropped and write it next to the output, so nothing vanishes unrecorded."""
    if not result.dropped:
        con.print("no duplicates dropped")
        return
    path = _dropped_path(out)
    write_lines(path, (json.dumps(d.to_dict(), ensure_ascii=False) for d in result.dropped))
    exact = sum(1 for d in result.dropped if d.kind == "exact")
    con.print(f"dropped {len(result.dropped)} duplicate(s) ({exact} exact, {len(result.dropped) - exact} near); "
              f"each with the id it duplicates in {path}")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="JSONL file of PromptRecords")],
    quarantine: Annotated[
        bool, typer.Option("--quarantine", help="collect bad lines into <name>.quarantine.jsonl and go on")
    ] = False,
) -> None:
    """Check every line of a JSONL dataset; stop at the first bad line unless --quarantine."""
    con = _out()
    try:
        result = load_jsonl(file, on_error="quarantine" if quarantine else "raise")
    except DatasetError as exc:
        raise _fail(exc) from None
    con.print(f"{file}: {result.total_lines} lines -> {len(result.records)} records, "
              f"{len(result.skipped)} skipped (blank), {len(result.quarantined)} quarantined")
    for line_no, reason in result.skipped:
        con.print(f"  skipped line {line_no}: {reason}")
    if result.quarantined:
        for _, _, reason in result.quarantined[:20]:
            con.print(f"  [yellow]{reason}[/yellow]", markup=True)
        qpath = write_quarantine(result, quarantine_path(file))
        con.print(f"quarantined lines with reasons written to {qpath}")
    con.print(f"dataset hash: {dataset_hash(result.records)}")


@app.command()
def stats(
    spec: Annotated[str, typer.Argument(help="dataset spec: seed[:split[:lang]], FILE.jsonl, BENCH:SOURCE")],
) -> None:
    """Count a dataset by pillar x label x language x split."""
    try:
        name, records = resolve_dataset(spec)
    except (DatasetError, SpecError) as exc:
        raise _fail(exc) from None
    con = _out()
    table = Table(title=f"{name}: {len(records)} records (hash {dataset_hash(records)})")
    for col in (*FIELDS, "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for key, n in sorted(count_by(records, *FIELDS).items()):
        table.add_row(*key, str(n))
    table.add_section()
    table.add_row("total", "", "", "", str(len(records)))
    con.print(table)
    pairs = pair_summary(records)
    if pairs["pair_ids"]:
        con.print(f"pairs: {pairs['complete_pairs']} complete (harmful + benign), "
                  f"{pairs['incomplete_pairs']} incomplete")


@app.command("load-benchmark")
def load_benchmark_cmd(
    name: Annotated[str, typer.Argument(help="registered benchmark, see `raipipe data benchmarks`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output JSONL in PromptRecord format")],
    source: Annotated[
        str | None, typer.Argument(help="local csv/jsonl/json/parquet file or HF dataset id[:config[:split]]")
    ] = None,
    dedup_against: Annotated[
        str | None, typer.Option("--dedup-against", help="drop prompts duplicating this dataset spec")
    ] = None,
    near: NearOpt = None,
) -> None:
    """Convert a public benchmark to PromptRecords (evaluation only), deduplicated."""
    con = _out()
    require_writable(out, "--out", kind="file")
    try:
        loaded = load_benchmark(name, source)
        against: list[PromptRecord] = resolve_dataset(dedup_against)[1] if dedup_against else []
        result = dedup(loaded.records, against=against, near_threshold=near)
    except (DatasetError, SpecError, KeyError) as exc:
        raise _fail(exc) from None
    con.print(f"{loaded.name} from {loaded.ref}: {loaded.total_rows} rows -> {len(loaded.records)} records")
    for where, reason in loaded.skipped:
        con.print(f"  skipped {where}: {reason}")
    _report_dedup(con, result, out)
    write_jsonl(result.kept, out)
    con.print(f"wrote {len(result.kept)} records to {out} (hash {dataset_hash(result.kept)})")


@app.command("dedup")
def dedup_cmd(
    inputs: Annotated[list[str], typer.Argument(help="dataset specs or JSONL files, in priority order")],
    out: Annotated[Path, typer.Option("--out", "-o", help="merged, deduplicated JSONL")],
    against: Annotated[
        str | None, typer.Option("--against", help="also drop prompts duplicating this dataset spec")
    ] = None,
    near: NearOpt = None,
) -> None:
    """Merge datasets keeping the first of each duplicate group; report each dropped record."""
    con = _out()
    require_writable(out, "--out", kind="file")
    try:
        merged: list[PromptRecord] = []
        for spec in inputs:
            name, records = resolve_dataset(spec)
            con.print(f"{name}: {len(records)} records")
            merged.extend(records)
        ref = resolve_dataset(against)[1] if against else []
        result = dedup(merged, against=ref, near_threshold=near)
    except (DatasetError, SpecError) as exc:
        raise _fail(exc) from None
    _report_dedup(con, result, out)
    write_jsonl(result.kept, out)
    con.print(f"wrote {len(result.kept)} of {len(merged)} records to {out} (hash {dataset_hash(result.kept)})")


@app.command("benchmarks")
def list_benchmarks() -> None:
    """List registered benchmark loaders, their accepted columns and default HF ids."""
    con = _out()
    con.print("registered benchmarks (public: evaluation only, never training)")
    for name, cls in registered_loaders().items():
        aliases = f" (aliases: {', '.join(cls.aliases)})" if cls.aliases else ""
        con.print(f"\n[bold]{name}[/bold]{aliases}: {cls.description}", markup=True)
        cols = "; ".join(f"{k} <- {' | '.join(repr(c) for c in v)}{' (optional)' if k in cls.optional else ''}"
                         for k, v in cls.columns.items())
        con.print(f"  columns: {cols}")
        con.print(f"  default HF id: {cls.hf_id or '-'}   license: {cls.license or '-'}")
