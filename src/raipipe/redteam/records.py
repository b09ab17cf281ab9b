"""Attack records: everything needed to count an attack and to rebuild its prompt exactly.

A record keeps the seed prompt, every converter step (name, parameters, derived seed, and the attacker
model's output where one was used), the turns sent and received, and typed judge verdicts. `replay`
rebuilds the converted conversation from the record alone; `replay(record, prompt=twin, model=...)`
puts a benign look-alike through the same wrappers. Records are one JSON object per line."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from raipipe.data.records import Label
from raipipe.judges.base import Judgement, Verdict
from raipipe.models.base import ChatModel, Conversation, Message
from raipipe.redteam.converters.chain import ConverterStep, replay_steps

SCHEMA_VERSION = 1
HUMAN_STRATEGY = "human"  # the strategy (and run kind) of findings a person flagged on the red-team page
HUMAN_PROVENANCE = "human red team"  # how their dataset rows name where they came from


class AttackOutcome(StrEnum):
    """How one attack ended. Only `target_refused` is evidence the target held; an attacker that would not
    attack, an unscoreable answer or an error is counted apart, never as safe."""

    SUCCESS = "success"  # the judge says the target complied
    PARTIAL = "partial"  # the target partly complied
    TARGET_REFUSED = "target_refused"
    UNSCOREABLE = "unscoreable"  # the judge could not score the answer (empty, degenerate, non-text)
    ATTACKER_FAILED = "attacker_failed"  # the attacker model refused or returned nothing usable
    ERROR = "error"  # a backend or judge failure

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> AttackOutcome:
        return {Verdict.COMPLY: cls.SUCCESS, Verdict.PARTIAL: cls.PARTIAL, Verdict.REFUSE: cls.TARGET_REFUSED,
                Verdict.UNSCOREABLE: cls.UNSCOREABLE}[verdict]


class JudgeVerdict(BaseModel):
    """A judge's verdict on one target response, with class probabilities as typed fields."""

    model_config = ConfigDict(extra="forbid")
    verdict: Verdict
    judge_id: str
    score: float | None = None
    p_comply: float | None = Field(default=None, ge=0.0, le=1.0)
    p_refuse: float | None = Field(default=None, ge=0.0, le=1.0)
    p_partial: float | None = Field(default=None, ge=0.0, le=1.0)
    rationale: str = ""

    @classmethod
    def from_judgement(cls, j: Judgement) -> JudgeVerdict:
        p = j.probabilities or {}
        return cls(verdict=j.verdict, judge_id=j.judge_id, score=j.score, rationale=j.rationale,
                   p_comply=p.get("comply"), p_refuse=p.get("refuse"), p_partial=p.get("partial"))


class AttackTurn(BaseModel):
    """One exchange: the conversation the attacker side sent and what the target answered."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0)
    sent: list[Message]
    response: str
    verdict: JudgeVerdict | None = None
    sent_at: datetime
    received_at: datetime


class AttackerTurn(BaseModel):
    """One call to the attacker model by an adaptive strategy: what it was asked, what it wrote, and
    whether its output was usable (a refusal or empty output is the attacker's failure, kept as evidence)."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0)
    sent: list[Message]
    output: str
    prompt: str | None = Field(default=None, description="the attack prompt parsed from the output; None if unusable")
    failure: str | None = Field(default=None, description="why the output was unusable (refusal, empty, ...)")
    model_id: str = ""


class AttackRecord(BaseModel):
    """One attack on one seed prompt by one strategy."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    id: str
    strategy: str
    seed_id: str
    seed_prompt: str
    label: Label | None = None
    pair_id: str | None = Field(default=None, description="the seed's benign/harmful twin, if any")
    chain_seed: int
    chain: list[ConverterStep]
    converted: list[Message] = Field(default_factory=list, description="the converted conversation; "
                                     "empty when the conversion itself failed")
    turns: list[AttackTurn] = Field(default_factory=list)
    outcome: AttackOutcome
    error: str | None = None
    target_model_id: str = ""
    judge_id: str = ""
    # adaptive strategies (attacker-written prompts, multi-turn); all optional so older records still load
    attack_prompt: str | None = Field(default=None, description="the attacker-written request the chain was "
                                      "applied to, in place of the seed prompt")
    history: list[Message] = Field(default_factory=list, description="earlier messages of a multi-turn attack, "
                                   "sent before the converted request")
    attacker_turns: list[AttackerTurn] = Field(default_factory=list)
    verdict: JudgeVerdict | None = Field(default=None, description="the verdict the outcome rests on when it is "
                                         "not the last turn's (e.g. a multi-turn attack judged as a whole)")
    score: float | None = Field(default=None, description="the strategy's score of the attempt (what it climbs)")
    params: dict = Field(default_factory=dict, description="the strategy's parameters for this attempt")
    started_at: datetime
    finished_at: datetime

    @property
    def final_verdict(self) -> JudgeVerdict | None:
        return self.turns[-1].verdict if self.turns else None


def attack_id(strategy: str, seed_id: str, chain: Sequence[ConverterStep], chain_seed: int) -> str:
    """Stable id: the same strategy, seed, chain and seed give the same id (so a run can resume)."""
    blob = json.dumps([strategy, seed_id, chain_seed, [[s.name, s.params, s.seed] for s in chain]], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def utcnow() -> datetime:
    return datetime.now(UTC)


def replay(record: AttackRecord, prompt: str | None = None, model: ChatModel | None = None) -> Conversation:
    """Rebuild the converted conversation. With no `prompt`, exactly the recorded one (attacker outputs are
    taken from the record); with a `prompt` (a benign twin), the same steps and seeds applied to it, asking
    `model` again where a step used an attacker model. A record whose attacker refused raises
    AttackerRefusedError again, as the original attempt did."""
    if record.attack_prompt is not None or record.history:  # adaptive: the attacker's words stand in for the seed
        return _replay_adaptive(record, prompt, model)
    if prompt is None:
        return replay_steps(record.chain, record.seed_prompt)
    return replay_steps(record.chain, prompt, model=model, use_recorded=False)


def _replay_adaptive(record: AttackRecord, prompt: str | None, model: ChatModel | None) -> Conversation:
    """History, then the attacker-written request through the chain. A twin goes through the same chain
    alone: the attacker's rewording and earlier turns are specific to the harmful request, not wrappers."""
    if prompt is not None:
        if not record.chain:
            return [Message(role="user", content=prompt)]
        return replay_steps(record.chain, prompt, model=model, use_recorded=False)
    text = record.attack_prompt if record.attack_prompt is not None else record.seed_prompt
    last = replay_steps(record.chain, text) if record.chain else [Message(role="user", content=text)]
    return [*record.history, *last]


def write_records(path: str | Path, records: Iterable[AttackRecord], append: bool = False) -> int:
    n = 0
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for r in records:
            f.write(r.model_dump_json() + "\n")
            n += 1
    return n


def read_records(path: str | Path) -> Iterator[AttackRecord]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield AttackRecord.model_validate_json(line)
