"""Step completion in the store: one `StepRun` row per (run, step), written the same way for every step.

A step's row goes `started` before it works and `done` (with its output and finish time) or `failed`
(with the error) after. A row left `started` is a step that was running when the process died; the
next run re-runs it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from raipipe.posttrain.steps.base import StepOutput
from raipipe.store.base import _now
from raipipe.store.posttrain_tables import StepRun

STARTED, DONE, FAILED = "started", "done", "failed"


class StepLedger:
    """Reads and writes the StepRun rows of one run, identified by `run_key` (its output directory)."""

    def __init__(self, sessions: sessionmaker[Session], run_key: str):
        self.sessions = sessions
        self.run_key = run_key

    def get(self, step: str) -> StepRun | None:
        with self.sessions() as s:
            return s.scalar(select(StepRun).where(StepRun.run_key == self.run_key, StepRun.step == step))

    def all(self) -> dict[str, StepRun]:
        with self.sessions() as s:
            return {r.step: r for r in s.scalars(select(StepRun).where(StepRun.run_key == self.run_key))}

    def _write(self, step: str, digest: str, status: str, **fields) -> None:
        with self.sessions.begin() as s:
            row = s.scalar(select(StepRun).where(StepRun.run_key == self.run_key, StepRun.step == step))
            if row is None:
                row = StepRun(run_key=self.run_key, step=step, attempts=0)
                s.add(row)
            row.status, row.config_digest = status, digest
            for key, value in fields.items():
                setattr(row, key, value)

    def started(self, step: str, digest: str) -> None:
        previous = self.get(step)
        self._write(step, digest, STARTED, started_at=_now(), finished_at=None, summary={}, error="",
                    attempts=(previous.attempts if previous else 0) + 1)

    def done(self, step: str, digest: str, output: StepOutput) -> None:
        self._write(step, digest, DONE, finished_at=_now(), summary=output.model_dump(mode="json"))

    def failed(self, step: str, digest: str, error: BaseException) -> None:
        self._write(step, digest, FAILED, finished_at=_now(), error=f"{type(error).__name__}: {error}")
