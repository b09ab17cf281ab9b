"""A flagged turn becomes an AttackRecord (strategy "human") plus the seed rows promotion reads, so a
person's finding goes through `raipipe redteam promote` exactly as an automated one does.

The record holds the conversation up to and including the flagged turn (the history, then the flagged
request and reply), the red teamer's verdict on that turn (judge id `human:NAME`, the note as its
rationale), and in `params` the provenance: red teamer, policy and its version, note, turn index,
conversation id and any benign look-alike. Seeds are derived from records alone, so the run folder's
seed file can always be rebuilt from what the store and `attacks.jsonl` hold."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from raipipe.data.records import Label, PromptRecord, Provenance, SourceKind
from raipipe.errors import UsageError
from raipipe.judges.base import Verdict
from raipipe.models.base import Message
from raipipe.policy import Pillar, Policy, PolicyPack
from raipipe.redteam.records import (
    HUMAN_PROVENANCE,
    HUMAN_STRATEGY,
    AttackOutcome,
    AttackRecord,
    AttackTurn,
    JudgeVerdict,
)

MAX_TEXT = 8000  # characters of a note or a benign look-alike


class Turn(BaseModel):
    """One stored exchange of a conversation."""

    model_config = ConfigDict(frozen=True)
    index: int
    message: str
    reply: str
    sent_at: datetime
    received_at: datetime


class Flag(BaseModel):
    """What the flag form asked for, after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    turn: int
    policy: Policy
    note: str
    benign: str = ""


def _text(form: Mapping[str, str], field: str, required: bool) -> str:
    value = (form.get(field) or "").strip()
    if required and not value:
        raise UsageError("must not be empty", field=field, hint="say what went wrong, in a sentence or two")
    if len(value) > MAX_TEXT:
        raise UsageError(f"is {len(value)} characters; at most {MAX_TEXT}", field=field)
    return value


def parse_flag(form: Mapping[str, str], n_turns: int, pack: PolicyPack) -> Flag:
    """Validate the flag form; each error names its form field (turn, policy_id, note, benign)."""
    if n_turns == 0:
        raise UsageError("this conversation has no turns to flag yet", field="turn",
                         hint="send a message first")
    raw = (form.get("turn") or "").strip()
    turn = int(raw) if raw.isdigit() else -1
    if not 0 <= turn < n_turns:
        raise UsageError(f"{raw!r} is not a turn of this conversation", field="turn",
                         hint=f"choose a turn from 1 to {n_turns}")
    policy_id = (form.get("policy_id") or "").strip()
    if policy_id not in pack.policies:
        raise UsageError(f"{policy_id!r} is not a policy of pack {pack.ref}" if policy_id else "choose a policy",
                         field="policy_id", hint="pick the policy the reply broke from the list")
    return Flag(turn=turn, policy=pack.policies[policy_id], note=_text(form, "note", True),
                benign=_text(form, "benign", False))


def flag_id(conversation_id: str, turn: int, policy_id: str) -> str:
    """Stable: flagging the same turn against the same policy twice is one finding, not two."""
    blob = json.dumps([HUMAN_STRATEGY, conversation_id, turn, policy_id])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sent(turns: Sequence[Turn], upto: int) -> list[Message]:
    """The conversation as the target saw it when it answered turn `upto`."""
    out: list[Message] = []
    for t in turns[:upto]:
        out += [Message(role="user", content=t.message), Message(role="assistant", content=t.reply)]
    return [*out, Message(role="user", content=turns[upto].message)]


def flag_record(conversation_id: str, turns: Sequence[Turn], flag: Flag, red_teamer: str, target_model_id: str,
                flagged_at: datetime) -> AttackRecord:
    """The finding: a successful attack whose judge is the red teamer."""
    rid = flag_id(conversation_id, flag.turn, flag.policy.id)
    verdict = JudgeVerdict(verdict=Verdict.COMPLY, judge_id=f"human:{red_teamer}", rationale=flag.note)
    attack_turns = [AttackTurn(index=t.index, sent=_sent(turns, t.index), response=t.reply,
                               verdict=verdict if t.index == flag.turn else None, sent_at=t.sent_at,
                               received_at=t.received_at) for t in turns[:flag.turn + 1]]
    sent = attack_turns[-1].sent
    params = {"provenance": HUMAN_PROVENANCE, "red_teamer": red_teamer, "policy_id": flag.policy.id,
              "policy_version": flag.policy.version, "pillar": flag.policy.pillar.value, "note": flag.note,
              "flagged_turn": flag.turn, "conversation_id": conversation_id, "conversation_turns": len(turns),
              "benign_lookalike": flag.benign or None}
    return AttackRecord(
        id=rid, strategy=HUMAN_STRATEGY, seed_id=f"human-{rid}", seed_prompt=turns[flag.turn].message,
        label=Label.HARMFUL, pair_id=f"human-{rid}-pair" if flag.benign else None, chain_seed=0, chain=[],
        converted=sent, turns=attack_turns, outcome=AttackOutcome.SUCCESS, target_model_id=target_model_id,
        judge_id=verdict.judge_id, history=sent[:-1], params=params, started_at=turns[0].sent_at,
        finished_at=flagged_at)


def seeds_of(records: Iterable[AttackRecord]) -> list[PromptRecord]:
    """The harmful seed of each human finding and, where the red teamer wrote one, its benign partner."""
    out: list[PromptRecord] = []
    for r in records:
        if r.strategy != HUMAN_STRATEGY:
            continue
        p = r.params
        source = Provenance(kind=SourceKind.RED_TEAM, name=HUMAN_PROVENANCE,
                            ref=f"conversation:{p['conversation_id']}#turn-{p['flagged_turn'] + 1}",
                            collected=r.finished_at.date())
        common = {"pillar": Pillar(p["pillar"]), "policy_id": p["policy_id"], "pair_id": r.pair_id,
                  "source": source, "category": HUMAN_STRATEGY}
        out.append(PromptRecord(id=r.seed_id, prompt=r.seed_prompt, label=Label.HARMFUL, **common))
        if p.get("benign_lookalike"):
            out.append(PromptRecord(id=f"{r.seed_id}-benign", prompt=p["benign_lookalike"], label=Label.BENIGN,
                                    **common))
    return out
