"""`raipipe data generate`: grow post-training prompts from the policy-driven generator blocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from raipipe.data.generator import GenerationReport, GeneratorConfig, SplitRatios
from raipipe.data.generator import generate as run_generator
from raipipe.data.generator_blocks import LANGUAGES, load_blocks
from raipipe.data.io import DatasetError, write_jsonl, write_lines
from raipipe.data.seed import load_seed
from raipipe.models.registry import load_model  # heavy backends load only when asked for
from raipipe.policy.loader import PolicyError, load_pack
from raipipe.policy.schema import Pillar

Ratio = Annotated[float, typer.Option(min=0.0, max=1.0)]


def _sidecar(out: Path, suffix: str) -> Path:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.{suffix}")


def _counts_table(report: GenerationReport) -> Table:
    """Rows split x pillar, columns language x label: the shape a reviewer checks for gaps."""
    table = Table(title="generated prompts (split x pillar x language x label)")
    table.add_column("split")
    table.add_column("pillar")
    cols = [(lang, label) for lang in LANGUAGES for label in ("harmful", "benign")]
    for lang, label in cols:
        table.add_column(f"{lang}/{label[0]}", justify="right")
    for split in ("train", "dev", "test"):
        for pillar in Pillar:
            cells = [report.counts.get(f"{split}/{pillar.value}/{lang}/{label}", 0) for lang, label in cols]
            if any(cells):
                table.add_row(split, pillar.value, *(str(c) for c in cells))
    return table


def _print_report(con: Console, report: GenerationReport, out: Path, dropped_path: Path | None) -> None:
    con.print(_counts_table(report))
    con.print(f"wrote {report.kept} prompts to {out}: " + ", ".join(f"{k} {v}" for k, v in report.by_split.items())
              + " | " + ", ".join(f"{k} {v}" for k, v in report.by_label.items()))
    con.print(f"accounting: {report.candidates} candidates = {report.kept} kept + {len(report.dropped)} dropped")
    for reason, n in report.dropped_by_reason.items():
        con.print(f"  dropped {n:5d}  {reason}")
    if dropped_path:
        con.print(f"dropped rows, each with what it duplicates: {dropped_path}")
    con.print(f"distinct-prompt ratio {report.distinct_ratio:.4f}, "
              f"word-trigram variety {report.word_trigram_ratio:.4f}")


def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write (PromptRecord format)")],
    policy_pack: Annotated[
        Path | None, typer.Option("--policy-pack", help="policy pack directory (default: the shipped pack)")
    ] = None,
    blocks: Annotated[
        Path | None, typer.Option("--blocks", help="generator block directory (default: the shipped blocks)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed: same seed and blocks give the same file")] = 0,
    train: Ratio = 0.7,
    dev: Ratio = 0.15,
    test: Ratio = 0.15,
    pairs_per_intent: Annotated[int, typer.Option(min=1, help="pairs per benign intent and language")] = 10,
    near: Annotated[float, typer.Option(min=0.01, max=1.0, help="near-duplicate char 5-gram Jaccard")] = 0.8,
    against_seed: Annotated[
        bool, typer.Option(help="drop rows that near-duplicate the shipped seed set's held-out rows")
    ] = True,
    paraphrase_model: Annotated[
        str | None, typer.Option("--paraphrase-model", help="optionally reword every prompt, e.g. embedded:smollm2")
    ] = None,
) -> None:
    """Generate harmful/benign prompt pairs for every policy, split by topic, with full accounting."""
    con = Console(highlight=False, soft_wrap=True)
    try:
        config = GeneratorConfig(seed=seed, ratios=SplitRatios(train=train, dev=dev, test=test),
                                 pairs_per_intent=pairs_per_intent, near_threshold=near)
        pack = load_pack(policy_pack)
        block_set = load_blocks(blocks, pack=pack)
        seed_records = load_seed() if against_seed else []
    except (ValidationError, PolicyError, DatasetError) as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {exc}", markup=False)
        raise typer.Exit(code=1) from None
    model = None
    if paraphrase_model:
        model = load_model(paraphrase_model)
    try:
        records, report = run_generator(pack, block_set, config, seed_records=seed_records, paraphrase_model=model)
    finally:
        if model is not None:
            model.close()
    write_jsonl(records, out)
    dropped_path = _sidecar(out, "dropped.jsonl") if report.dropped else None
    if dropped_path:
        write_lines(dropped_path, (d.model_dump_json() for d in report.dropped))
    summary = report.model_dump(mode="json", exclude={"dropped"})
    write_lines(_sidecar(out, "report.json"), [json.dumps(summary, indent=2, ensure_ascii=False)])
    _print_report(con, report, out, dropped_path)


def register(app: typer.Typer) -> None:
    """Add `generate` to a typer app (`raipipe data generate`)."""
    app.command("generate")(generate)
