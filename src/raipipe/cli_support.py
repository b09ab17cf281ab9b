"""What every command-line entry point shares: the --debug switch and the one-paragraph error.

Apart from `raipipe.cli` so that stage packages with their own typer sub-apps (red teaming, deception)
use it without importing the root CLI, which imports them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import typer
from rich.console import Console

from raipipe.errors import RaipipeError

DEBUG_KEY = "raipipe.debug"  # set in the context by the root command's --debug


def debug_requested(ctx: typer.Context | None = None) -> bool:
    """--debug on the command line, or RAIPIPE_DEBUG=1 in the environment."""
    if ctx is not None and ctx.meta.get(DEBUG_KEY):
        return True
    return os.environ.get("RAIPIPE_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def friendly_errors(ctx: typer.Context) -> Iterator[None]:
    """Input errors end in one paragraph and their exit code, as under the main CLI (unless --debug)."""
    try:
        yield
    except RaipipeError as exc:
        if debug_requested(ctx):
            raise
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exc.exit_code) from None
