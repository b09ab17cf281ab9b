"""A human red-team run: a run folder as `raipipe redteam run` writes one (run.json, seeds.jsonl,
attacks.jsonl, store.sqlite) whose findings are the turns people flagged while chatting with the target.

Conversations live in the store, so restarting the page loses nothing. Flags go through RunState, the
writer automated runs use, so the folder and the store agree and `raipipe redteam promote` reads them
unchanged. One page serves a folder at a time. Calls to the target are serialised (a local model is not
safe to call from two threads at once), and so are writes of flags (RunState has one writer)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import func, select

from raipipe.data.io import write_jsonl
from raipipe.errors import BackendError, RaipipeError, StoreError, UsageError
from raipipe.models.base import ChatModel, GenerationParams, Message
from raipipe.policy import PolicyPack
from raipipe.redteam.records import HUMAN_STRATEGY, AttackRecord, utcnow
from raipipe.redteam.run import MANIFEST_FILE, STORE_FILE
from raipipe.redteam.run_state import RunState, write_json
from raipipe.redteam.seeds import SEEDS_FILE, read_manifest
from raipipe.redteam.web.flags import Turn, flag_record, parse_flag, seeds_of
from raipipe.redteam.web.tables import HumanConversation, HumanTurn, open_human_store
from raipipe.store.redteam_tables import RedteamRun

MAX_MESSAGE = 32000  # characters of one message to the target


class AlreadyFlaggedError(UsageError):
    """The same turn flagged against the same policy a second time (answered 409: nothing is stored)."""


class NotYoursError(UsageError):
    """A message sent into another red teamer's conversation (answered 403)."""


class ConversationSummary(BaseModel):
    id: str
    red_teamer: str
    created_at: datetime
    turns: int
    opening: str  # the first message, for the list of conversations


class Conversation(BaseModel):
    id: str
    red_teamer: str
    target_model_id: str
    created_at: datetime
    turns: list[Turn]
    flags: list[AttackRecord]


def _utc(when: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; the store only ever writes UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class HumanRun:
    """The run behind the page: conversations with `target`, flags against the policies of `pack`."""

    def __init__(self, out_dir: str | Path, target: ChatModel, pack: PolicyPack, *, store: str | Path | None = None,
                 params: GenerationParams | None = None):
        self.out, self.target, self.pack = Path(out_dir), target, pack
        self.params = params or GenerationParams(max_new_tokens=256)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run_id, self.store_url = self._open_manifest(store)
        self.maker = open_human_store(self.store_url)
        with self.maker.begin() as s:
            if s.get(RedteamRun, self.run_id) is None:
                s.add(RedteamRun(id=self.run_id, target_model_id=target.model_id, judge_id=HUMAN_STRATEGY,
                                 config=self._config(), status="open"))
        self.state = RunState(self.out, self.maker, self.run_id).load()  # heals the file and the store
        self._write_seeds()
        self._target_lock, self._write_lock = threading.Lock(), threading.Lock()

    def _config(self) -> dict:
        return {"strategies": [HUMAN_STRATEGY], "target_model_id": self.target.model_id,
                "judge_id": HUMAN_STRATEGY, "attacker_model_id": None}

    def _open_manifest(self, store: str | Path | None) -> tuple[str, str]:
        """The run id and store of the folder: new, or those of the human run already in it (same target)."""
        manifest = read_manifest(self.out / MANIFEST_FILE)
        if manifest is None:
            run_id, url = uuid.uuid4().hex[:16], str(store or self.out / STORE_FILE)
            write_json(self.out / MANIFEST_FILE, {
                "run_id": run_id, "kind": HUMAN_STRATEGY, "store": url, "config": self._config(),
                "policy": {"ref": self.pack.ref, "digest": self.pack.digest}, "started_at": utcnow().isoformat(),
                "status": "open"})
            return run_id, url
        if manifest.get("kind") != HUMAN_STRATEGY:
            raise UsageError(f"{self.out} holds automated red-team run {manifest.get('run_id')}",
                             hint="give human red teaming a folder of its own (a new --out)")
        held = manifest["config"]["target_model_id"]
        if held != self.target.model_id:
            raise UsageError(f"{self.out} holds human red teaming of {held!r}, not {self.target.model_id!r}",
                             hint="serve that folder with its own target, or choose a new --out")
        return manifest["run_id"], str(store or manifest["store"])

    def _write_seeds(self) -> None:
        write_jsonl(seeds_of(self.state.records), self.out / SEEDS_FILE)

    def start(self, red_teamer: str) -> str:
        """A new, empty conversation; returns its id."""
        conv_id = uuid.uuid4().hex[:16]
        with self.maker.begin() as s:
            s.add(HumanConversation(id=conv_id, run_id=self.run_id, red_teamer=red_teamer,
                                    target_model_id=self.target.model_id))
        return conv_id

    def conversation(self, conv_id: str) -> Conversation:
        with self.maker() as s:
            conv = s.get(HumanConversation, conv_id)
            if conv is None or conv.run_id != self.run_id:
                raise StoreError(f"no conversation {conv_id!r} in this run", hint="start one from the home page")
            rows = s.scalars(select(HumanTurn).where(HumanTurn.conversation_id == conv_id)
                             .order_by(HumanTurn.index)).all()
        turns = [Turn(index=t.index, message=t.message, reply=t.reply, sent_at=_utc(t.sent_at),
                      received_at=_utc(t.received_at)) for t in rows]
        return Conversation(id=conv.id, red_teamer=conv.red_teamer, target_model_id=conv.target_model_id,
                            created_at=_utc(conv.created_at), turns=turns, flags=self.flags(conv_id))

    def conversations(self, red_teamer: str) -> list[ConversationSummary]:
        """The red teamer's conversations, newest first."""
        first = select(HumanTurn.conversation_id, HumanTurn.message).where(HumanTurn.index == 0).subquery()
        counts = (select(HumanTurn.conversation_id, func.count().label("n"))
                  .group_by(HumanTurn.conversation_id).subquery())
        query = (select(HumanConversation, counts.c.n, first.c.message)
                 .outerjoin(counts, counts.c.conversation_id == HumanConversation.id)
                 .outerjoin(first, first.c.conversation_id == HumanConversation.id)
                 .where(HumanConversation.run_id == self.run_id, HumanConversation.red_teamer == red_teamer)
                 .order_by(HumanConversation.created_at.desc()))
        with self.maker() as s:
            return [ConversationSummary(id=c.id, red_teamer=c.red_teamer, created_at=_utc(c.created_at),
                                        turns=n or 0, opening=m or "") for c, n, m in s.execute(query)]

    def flags(self, conv_id: str | None = None) -> list[AttackRecord]:
        """Findings of this run (of one conversation), newest first."""
        found = [r for r in self.state.records if r.strategy == HUMAN_STRATEGY
                 and (conv_id is None or r.params.get("conversation_id") == conv_id)]
        return sorted(found, key=lambda r: r.finished_at, reverse=True)

    def send(self, conv_id: str, message: str, red_teamer: str) -> Turn:
        """Send the next message with the whole conversation so far; store the exchange once answered."""
        text = (message or "").strip()
        if not text:
            raise UsageError("must not be empty", field="message", hint="type what to send to the target")
        if len(text) > MAX_MESSAGE:
            raise UsageError(f"is {len(text)} characters; at most {MAX_MESSAGE}", field="message")
        with self._target_lock:  # one exchange at a time: also keeps each conversation's turns in order
            conv = self.conversation(conv_id)
            if conv.red_teamer != red_teamer:
                raise NotYoursError(f"conversation {conv_id} is {conv.red_teamer}'s",
                                    hint="start a conversation of your own")
            sent = [m for t in conv.turns for m in (Message(role="user", content=t.message),
                                                     Message(role="assistant", content=t.reply))]
            sent_at = utcnow()
            reply = self._ask([*sent, Message(role="user", content=text)])
            turn = Turn(index=len(conv.turns), message=text, reply=reply, sent_at=sent_at, received_at=utcnow())
            with self.maker.begin() as s:
                s.add(HumanTurn(conversation_id=conv_id, **turn.model_dump()))
        return turn

    def _ask(self, conversation: list[Message]) -> str:
        try:
            return self.target.generate([conversation], self.params)[0][0]
        except RaipipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend failure: the person sees why and may retry
            raise BackendError(f"target {self.target.model_id} failed: {type(exc).__name__}: {exc}",
                               hint="nothing was stored; send the message again") from exc

    def flag(self, conv_id: str, form: Mapping[str, str], red_teamer: str) -> AttackRecord:
        """Store a flagged turn as a finding (run folder and store) and refresh the seed file."""
        conv = self.conversation(conv_id)
        flag = parse_flag(form, len(conv.turns), self.pack)
        record = flag_record(conv.id, conv.turns, flag, red_teamer, conv.target_model_id, utcnow())
        with self._write_lock:
            if record.id in self.state.done_ids:
                raise AlreadyFlaggedError(f"turn {flag.turn + 1} is already flagged against {flag.policy.id}",
                                          field="policy_id", hint="choose another policy or turn")
            self.state.add([record])
            self._write_seeds()
        return record
