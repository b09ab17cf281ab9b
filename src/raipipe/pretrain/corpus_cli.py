"""`corpus` command (mounted as `raipipe pretrain`): score and filter a pretraining corpus,
print the ledger, and optionally mix the result with exercises at target proportions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from raipipe.errors import RaipipeError, require_writable
from raipipe.policy.loader import parse_yaml_model
from raipipe.pretrain.corpus import (
    CorpusConfig,
    CorpusLedger,
    MixConfig,
    MixReport,
    corpus_sources,
    mix,
    run_corpus,
)

app = typer.Typer(no_args_is_help=True, help="Harmful text in a pretraining corpus: score, act, account, mix.")


def parse_mix(value: str) -> dict[str, float]:
    """`general=0.7,exercises=0.2,recontextualised=0.1` → {name: proportion}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, num = part.partition("=")
        try:
            out[name.strip()] = float(num)
        except ValueError:
            raise typer.BadParameter(f"{part!r}: expected NAME=PROPORTION") from None
        if not sep or out[name.strip()] <= 0:
            raise typer.BadParameter(f"{part!r}: expected NAME=PROPORTION with a proportion above 0")
    return out


def ledger_table(ledger: CorpusLedger) -> Table:
    table = Table(title=f"{ledger.documents_in} documents in, every one accounted for")
    for col in ("shard", "in", "keep", "recontextualise", "drop", "quarantine"):
        table.add_column(col, justify="left" if col == "shard" else "right")
    for s in ledger.shards:
        table.add_row(s.shard, str(s.documents_in), *(str(s.outcomes[k]) for k in
                                                      ("keep", "recontextualise", "drop", "quarantine")))
    table.add_row("total", str(ledger.documents_in), *(str(ledger.outcomes[k]) for k in
                                                       ("keep", "recontextualise", "drop", "quarantine")))
    return table


def mix_table(report: MixReport) -> Table:
    table = Table(title=f"mixed training set: {report.total} documents")
    for col in ("source", "available", "taken", "target", "achieved (docs)", "achieved (chars)", "repeated"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for s in report.sources:
        table.add_row(s.name, str(s.available), str(s.taken), f"{s.target:.3f}", f"{s.achieved:.3f}",
                      f"{s.achieved_chars:.3f}", "yes" if s.repeated else "no")
    return table


@app.command("corpus")
def corpus(
    input_dir: Annotated[Path, typer.Option("--input", help="folder of JSONL / plain-text shards")],
    out: Annotated[Path, typer.Option("--out", help="output folder (data, decisions, quarantine, ledger)")],
    executor: Annotated[str, typer.Option("--executor", help="local or ray")] = "local",
    workers: Annotated[int, typer.Option("--workers", min=1, help="processes or concurrent Ray tasks")] = 1,
    scorer: Annotated[str | None, typer.Option("--scorer", help="minilm (default) or lexical")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML CorpusConfig (flags override it)")] = None,
    pack: Annotated[Path | None, typer.Option("--pack", help="policy pack folder (default: shipped)")] = None,
    harm_tags: Annotated[bool, typer.Option("--harm-tags", help="prefix recontextualised text with a tag")] = False,
    mix_spec: Annotated[str | None, typer.Option("--mix", help="e.g. general=0.7,exercises=0.2,recontextualised=0.1")]
    = None,
    exercises: Annotated[Path | None, typer.Option("--exercises", help="exercises folder for the mix")] = None,
    mix_total: Annotated[int | None, typer.Option("--mix-total", min=1, help="documents in the mix")] = None,
) -> None:
    """Score every document, drop / recontextualise / keep by severity, write the ledger; resumable."""
    con = Console(highlight=False, soft_wrap=True)
    try:
        if not input_dir.is_dir():
            raise RaipipeError(f"--input {input_dir}: not a folder", hint="give a folder of .jsonl/.txt shards")
        require_writable(out, "--out")
        cfg = parse_yaml_model(config, CorpusConfig) if config else CorpusConfig()
        overrides: dict[str, Any] = {"executor": {"name": executor, "workers": workers},
                                     "actions": {"harm_tags": harm_tags or cfg.actions.harm_tags}}
        if scorer:
            overrides["scorer"] = {"name": scorer}
        if pack:
            overrides["pack"] = str(pack)
        cfg = _override(cfg, overrides)
        proportions = parse_mix(mix_spec) if mix_spec else {}
        result = run_corpus(input_dir, out, cfg)
        con.print(ledger_table(result.ledger))
        if result.skipped:
            con.print(f"resumed: {len(result.skipped)} shard(s) already done were not reprocessed")
        if proportions:
            report = mix(corpus_sources(out, proportions, exercises), out / "mix", MixConfig(total=mix_total))
            con.print(mix_table(report))
    except (RaipipeError, ValueError, OSError) as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=getattr(exc, "exit_code", 1)) from exc


def _override(cfg: CorpusConfig, overrides: dict) -> CorpusConfig:
    data = cfg.model_dump(mode="json")
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return CorpusConfig.model_validate(data)
