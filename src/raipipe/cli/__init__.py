"""`raipipe` command line: a thin typer layer over the stage packages.

Bad input ends in one readable paragraph on stderr and exit code 2 (1 for failures at run time), never a
traceback; `--debug` (or RAIPIPE_DEBUG=1) shows the traceback instead."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import version
from typing import Any

import typer
import yaml
from pydantic import ValidationError
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.exceptions import TyperException

from raipipe.cli import data_cmd, eval_cmd, generate_cmd, judge_cmd, policy_cmd, posttrain_cmd, rank_cmd
from raipipe.cli_support import DEBUG_KEY, debug_requested
from raipipe.errors import RaipipeError
from raipipe.judges import registered_judges
from raipipe.models import registered_backends
from raipipe.pretrain import cli as pretrain_cli
from raipipe.pretrain import corpus_cli, probe_cli
from raipipe.redteam import CONVERTERS, STRATEGIES
from raipipe.redteam import cli as redteam_cli
from raipipe.redteam.deception import cli as deception_cli


def friendly(exc: BaseException) -> tuple[str, int] | None:
    """(one-paragraph message, exit code) for errors caused by input; None for bugs (keep the traceback)."""
    if isinstance(exc, RaipipeError):
        return str(exc), exc.exit_code
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{exc.title}: field '{where}': {err['msg']}{more} — fix: correct that field", 2
    if isinstance(exc, yaml.YAMLError):
        return f"invalid YAML: {str(exc).splitlines()[0]} — fix: correct the YAML syntax", 2
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError):
        what = {FileNotFoundError: "no such file or directory", IsADirectoryError: "is a directory",
                NotADirectoryError: "not a directory", PermissionError: "permission denied"}[type(exc)]
        return f"{exc.filename or ''}: {what} — fix: check the path", 2
    return None


def _tidy(command: TyperCommand | TyperGroup) -> None:
    """Help shows `--out PATH`, not python type tags like `<path>` or `--help <bool>`."""
    for param in getattr(command, "params", []):
        if isinstance(param, TyperOption) and param.metavar is None:
            desc = param.type_descriptor
            choices = [str(getattr(c, "value", c)) for c in desc.choices or ()] if desc.is_choice else []
            param.metavar = "" if param.is_flag or param.count else (
                "[" + "|".join(choices) + "]" if choices else (param.name or "value").upper())
    help_option = command.get_help_option(typer.Context(command))  # built once and cached by the command
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _tidy(sub)


class RaipipeGroup(TyperGroup):
    """The root group: tidies every command's help, and turns input errors into one paragraph."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _tidy(self)

    # typer builds every context from its own typer.Context subclass, narrower than click's in the base class
    def get_params(self, ctx: typer.Context) -> list:  # type: ignore[override]
        params = super().get_params(ctx)  # typer appends the shell-completion flags after __init__
        for param in params:
            if isinstance(param, TyperOption) and param.metavar is None and param.is_flag:
                param.metavar = ""
        return params

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer.Context, as above
        try:
            return super().invoke(ctx)
        except (TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            explained = friendly(exc)
            if explained is None or debug_requested(ctx):
                raise
            typer.echo(f"error: {explained[0]}", err=True)
            raise typer.Exit(explained[1]) from None



app = typer.Typer(help="raipipe: policy-driven Responsible-AI pipeline for LLMs.", no_args_is_help=True,
                  cls=RaipipeGroup)
app.add_typer(policy_cmd.app, name="policy", help="Validate, show, diff and map policies.")
generate_cmd.register(data_cmd.app)
app.add_typer(data_cmd.app, name="data", help="Validate, generate and load datasets (public benchmarks too).")
app.add_typer(judge_cmd.app, name="judge", help="Score responses with a judge; calibrate judges.")
app.add_typer(rank_cmd.app, name="rank", help="Rank sampled candidates: web page, vendor JSONL, AI feedback.")
app.add_typer(posttrain_cmd.app, name="posttrain", help="Post-train for policy adherence (DPO / GRPO, LoRA).")
# one `raipipe pretrain` group: exercises, stale, corpus, probe, train
pretrain_cli.app.registered_commands += corpus_cli.app.registered_commands + probe_cli.app.registered_commands
app.add_typer(pretrain_cli.app, name="pretrain",
              help="Pretraining data: exercises from policy, harmful text in a corpus, probes.")
app.add_typer(redteam_cli.app, name="redteam",
              help="Red teaming: run attacks, red team by hand in a web page, promote findings, report.")
app.add_typer(deception_cli.app, name="deception",
              help="Long-horizon deception: multi-session scenarios and trajectory checks.")
eval_cmd.register(app)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"raipipe {version('raipipe')}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    show_version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                      help="print the version and exit"),
    debug: bool = typer.Option(False, "--debug", help="show the full traceback of an error (or RAIPIPE_DEBUG=1)"),
) -> None:
    """raipipe: policy-driven Responsible-AI pipeline for LLMs."""
    ctx.meta[DEBUG_KEY] = debug


@app.command("list")
def list_plugins(kind: str = typer.Argument(..., help="backends, judges, converters or attacks")) -> None:
    """What is registered (built in, or added by another package through an entry point)."""
    kinds: dict[str, Callable[[], Mapping[str, type]]] = {
        "backends": registered_backends, "judges": registered_judges, "converters": CONVERTERS.all,
        "attacks": STRATEGIES.all}
    if kind not in kinds:
        raise typer.BadParameter(f"choose one of {sorted(kinds)}", param_hint="KIND")
    for name, cls in kinds[kind]().items():
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:18} {doc[0] if doc else ''}")


def main() -> None:
    app()
