"""Rich progress for a red-team run: units finished, attempts recorded, successes so far."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from raipipe.redteam.records import AttackOutcome, AttackRecord


class RunProgress:
    """A progress bar over (strategy, seed) units; a no-op when disabled (tests, piped output)."""

    def __init__(self, total: int, already: int, enabled: bool = True):
        self.enabled, self.attempts, self.successes = enabled, 0, 0
        self._progress = Progress(TextColumn("[bold]red team"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                                  console=Console(stderr=True), disable=not enabled)
        self._task = self._progress.add_task("units", total=total, completed=already, note="")

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def records(self, new: Sequence[AttackRecord]) -> None:
        self.attempts += len(new)
        self.successes += sum(r.outcome in (AttackOutcome.SUCCESS, AttackOutcome.PARTIAL) for r in new)
        self._progress.update(self._task, note=f"{self.attempts} attempts, {self.successes} broke through")

    def unit_done(self) -> None:
        self._progress.advance(self._task)
