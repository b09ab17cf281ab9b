"""What a red-team run has finished, kept in two places that agree: `attacks.jsonl` in the run folder
(portable, replayable) and the store (queryable). A run killed at any moment resumes from their union:
a record in one but not the other is copied across, a torn last JSONL line is cut off, and finished
(strategy, seed) units are skipped. Recorded exchanges also answer the target again on resume, so a
strategy that replays deterministically up to where it stopped spends no query on what it already did."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from raipipe.fileio import atomic_write_json
from raipipe.judges.base import Judge, JudgeInput, Judgement
from raipipe.models.base import ChatModel, Conversation, GenerationParams, conversation_key
from raipipe.redteam.batching import BatchingTarget
from raipipe.redteam.records import AttackRecord, utcnow
from raipipe.store.redteam_tables import AttackRow, AttackUnit, RedteamRun

log = logging.getLogger(__name__)

ATTACKS_FILE = "attacks.jsonl"


def read_attacks_tolerant(path: Path, repair: bool = False) -> list[AttackRecord]:
    """Records of a JSONL file a crash may have cut mid-line; with `repair`, the torn tail is removed
    (and a missing final newline added) so the next append starts on a line of its own."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    out: list[AttackRecord] = []
    pos = good_end = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl == -1 else nl + 1
        line = data[pos:end].strip()
        if line:
            try:
                out.append(AttackRecord.model_validate_json(line))
            except ValueError:
                if nl == -1:
                    break  # the torn last line of a killed writer
                log.warning("%s: skipping an unreadable line at byte %d", path, pos)
        good_end = pos = end
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    elif repair and data and not data.endswith(b"\n"):
        with open(path, "ab") as f:
            f.write(b"\n")
    return out


class RunState:
    """Finished records and units of one run; single writer (the run's main thread)."""

    def __init__(self, out_dir: Path, maker: sessionmaker[Session], run_id: str):
        self.path, self.maker, self.run_id = out_dir / ATTACKS_FILE, maker, run_id
        self.done_ids: set[str] = set()
        self.done_units: set[tuple[str, str]] = set()
        self.records: list[AttackRecord] = []

    def load(self) -> RunState:
        """Read both copies and make each hold the union of the two."""
        from_file = {r.id: r for r in read_attacks_tolerant(self.path, repair=True)}
        with self.maker() as s:
            rows = s.scalars(select(AttackRow).where(AttackRow.run_id == self.run_id)).all()
            from_store = {row.record_id: AttackRecord.model_validate(row.record) for row in rows}
            self.done_units = {(u.strategy, u.seed_id) for u in
                               s.scalars(select(AttackUnit).where(AttackUnit.run_id == self.run_id))}
        missing_in_file = [r for k, r in from_store.items() if k not in from_file]
        missing_in_store = [r for k, r in from_file.items() if k not in from_store]
        if missing_in_file:
            self._append_file(missing_in_file)
        if missing_in_store:
            self._insert(missing_in_store)
        self.records = list(from_file.values()) + missing_in_file
        self.done_ids = {r.id for r in self.records}
        return self

    def add(self, records: Sequence[AttackRecord], units: Sequence[tuple[str, str, int]] = ()) -> list[AttackRecord]:
        """Write new records (file first) and finished (strategy, seed, count) units in one store transaction;
        ids already done are dropped."""
        fresh, seen = [], set()
        for r in records:
            if r.id not in self.done_ids and r.id not in seen:
                fresh.append(r)
                seen.add(r.id)
        units = [u for u in dict.fromkeys(units) if (u[0], u[1]) not in self.done_units]
        if fresh:
            self._append_file(fresh)
        if fresh or units:
            with self.maker.begin() as s:
                self._insert_rows(s, fresh)
                if units:
                    s.execute(insert(AttackUnit), [{"run_id": self.run_id, "strategy": st, "seed_id": sid,
                                                    "records": n} for st, sid, n in units])
        self.done_ids |= seen
        self.records.extend(fresh)
        self.done_units |= {(u[0], u[1]) for u in units}
        return fresh

    def mark_run(self, status: str) -> None:
        with self.maker.begin() as s:
            run = s.get(RedteamRun, self.run_id)
            if run is not None:
                run.status = status
                run.finished_at = utcnow() if status != "running" else None

    def _append_file(self, records: Iterable[AttackRecord]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(r.model_dump_json() + "\n" for r in records))
            f.flush()

    def _insert(self, records: Sequence[AttackRecord]) -> None:
        with self.maker.begin() as s:
            self._insert_rows(s, records)

    def _insert_rows(self, s: Session, records: Sequence[AttackRecord]) -> None:
        """One executemany INSERT (ORM bulk insert, column defaults applied): unlike `add_all`, no
        unit-of-work bookkeeping per object, which was most of the writer's time in a fast run."""
        if records:
            s.execute(insert(AttackRow), [
                {"run_id": self.run_id, "record_id": r.id, "strategy": r.strategy, "seed_id": r.seed_id,
                 "outcome": r.outcome.value, "chain": "+".join(step.name for step in r.chain),
                 "record": r.model_dump(mode="json")} for r in records])


class ReplayTarget(ChatModel):
    """The target, answering first from recorded exchanges (in recorded order per conversation); calls
    to backends that are not safe to call from several threads at once are gathered into batches."""

    name = "replay"

    def __init__(self, target: ChatModel, records: Iterable[AttackRecord] = ()):
        self.target = target
        self.recorded: dict[str, deque[str]] = defaultdict(deque)
        for r in records:
            for t in r.turns:
                self.recorded[conversation_key(t.sent)].append(t.response)
        self.replayed = self.queried = 0
        self._lock = threading.Lock()
        self._batcher = BatchingTarget(target) if not hasattr(target, "agenerate") else None

    @property
    def model_id(self) -> str:
        return self.target.model_id

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        out: list[list[str] | None] = [None] * len(conversations)
        with self._lock:
            for i, conv in enumerate(conversations):
                queue = self.recorded.get(conversation_key(conv))
                if queue and params.num_return_sequences == 1:
                    out[i] = [queue.popleft()]
                    self.replayed += 1
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            live = self._live([conversations[i] for i in todo], params)
            for i, texts in zip(todo, live, strict=True):
                out[i] = texts
            with self._lock:
                self.queried += len(todo)
        return out  # type: ignore[return-value]

    def _live(self, conversations: list[Conversation], params: GenerationParams) -> list[list[str]]:
        if self._batcher is None:
            return self.target.generate(conversations, params)
        return self._batcher.generate(conversations, params)


class LockedJudge(Judge):
    """A judge called from several attack threads: one call at a time (learned judges are not re-entrant)."""

    def __init__(self, judge: Judge):
        self.inner, self._lock = judge, threading.Lock()
        self.name = getattr(judge, "name", "")  # type: ignore[misc]

    @property
    def judge_id(self) -> str:
        return self.inner.judge_id

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgement]:
        with self._lock:
            return self.inner.judge(items)


def write_json(path: Path, obj: dict) -> None:
    """A small JSON file written whole (temp file + rename)."""
    atomic_write_json(path, obj, indent=2, default=str)
