"""`raipipe` command line: a thin typer layer over the stage packages."""

from __future__ import annotations

from importlib.metadata import version

import typer

from raipipe.cli import data_cmd, eval_cmd, judge_cmd, policy_cmd, posttrain_cmd, rank_cmd

app = typer.Typer(help="raipipe: policy-driven Responsible-AI pipeline for LLMs.", no_args_is_help=True)
app.add_typer(policy_cmd.app, name="policy", help="Validate, show, diff and map policies.")
app.add_typer(data_cmd.app, name="data", help="Validate datasets and load public benchmarks.")
app.add_typer(judge_cmd.app, name="judge", help="Score responses with a judge; calibrate judges.")
app.add_typer(rank_cmd.app, name="rank", help="Rank sampled candidates: web page, vendor JSONL, AI feedback.")
app.add_typer(posttrain_cmd.app, name="posttrain", help="Post-train for policy adherence (DPO / GRPO, LoRA).")
eval_cmd.register(app)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"raipipe {version('raipipe')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                      help="print the version and exit"),
) -> None:
    """raipipe: policy-driven Responsible-AI pipeline for LLMs."""


@app.command("list")
def list_plugins(kind: str = typer.Argument(..., help="backends or judges")) -> None:
    """What is registered (built in, or added by another package through an entry point)."""
    from raipipe.judges import registered_judges
    from raipipe.models import registered_backends

    kinds = {"backends": registered_backends, "judges": registered_judges}
    if kind not in kinds:
        raise typer.BadParameter(f"choose one of {sorted(kinds)}", param_hint="KIND")
    for name, cls in kinds[kind]().items():
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:18} {doc[0] if doc else ''}")


def main() -> None:
    app()
