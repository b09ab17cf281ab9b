"""Crescendo-style multi-turn escalation: open with harmless questions on the goal's subject and walk
towards the goal a step per turn, building on the target's own answers.

The steps come from the attacker model, or from a team-written escalation plan (templates with a
`{goal}` slot) when no attacker should be used. A refused step is backed off: dropped from the
conversation and asked again more gently, a limited number of times. Success is judged on the whole
conversation — the target's accepted answers together, from `judge_after` steps on (or once the plan is
done) — since a multi-turn attack can assemble what no single answer gives. A refusal judge cannot tell an
answer to a harmless opening from an answer to the goal; a goal-aware judge (an LLM judge) can. One record
per conversation keeps every turn, refused ones included."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import Field

from raipipe.data.records import PromptRecord
from raipipe.judges.base import JudgeInput, Verdict
from raipipe.models.base import Message
from raipipe.redteam.records import AttackerTurn, AttackOutcome, AttackRecord, AttackTurn, JudgeVerdict, utcnow
from raipipe.redteam.strategies import prompts
from raipipe.redteam.strategies.adaptive import AdaptiveConfig, AdaptiveStrategy, AttackerFailure, outcome_of
from raipipe.redteam.strategies.base import QueryBudget, register_strategy

log = logging.getLogger(__name__)


class CrescendoConfig(AdaptiveConfig):
    planner: Literal["attacker", "plan"] = Field(default="attacker", description="who writes the steps: the "
                                                 "attacker model, or the team-written `plan`")
    plan: list[str] = Field(default_factory=lambda: list(prompts.DEFAULT_PLAN), min_length=1,
                            description="escalation steps, each a template with an optional {goal} slot")
    max_turns: int = Field(default=6, ge=1, description="target queries per conversation, refused ones included")
    max_backoffs: int = Field(default=2, ge=0, description="refused steps rephrased per conversation")
    conversations: int = Field(default=1, ge=1, description="conversations per seed (until one succeeds)")
    judge_after: int = Field(default=3, ge=1, description="accepted steps before the attacker's conversation is "
                             "judged for success (a plan's is judged once complete): the opening turns are harmless "
                             "by design, and a refusal judge would count any answer to them as compliance")


@dataclass
class Dialogue:
    """One conversation in progress."""

    history: list[Message] = field(default_factory=list)  # accepted exchanges only
    turns: list[AttackTurn] = field(default_factory=list)
    attacker_turns: list[AttackerTurn] = field(default_factory=list)
    attacker_conv: list[Message] = field(default_factory=list)  # the attacker's last request, for back-offs
    backoffs: int = 0
    step: int = 0
    verdict: JudgeVerdict | None = None
    judged: int = 0  # length of the history the verdict is about
    score: float = 0.0
    error: str | None = None


@register_strategy
class CrescendoAttack(AdaptiveStrategy):
    """Escalate over several turns; back off on refusal; judge the conversation as a whole."""

    name = "crescendo"
    config_cls = CrescendoConfig
    config: CrescendoConfig

    def attack(self, seed: PromptRecord, budget: QueryBudget) -> Iterator[AttackRecord]:
        for n in range(self.config.conversations):
            if budget.remaining <= 0:
                log.info("crescendo on %s: budget of %d spent", seed.id, budget.limit)
                return
            rec = self.converse(seed, n, budget)
            yield rec
            if rec.outcome is AttackOutcome.SUCCESS:
                return

    def converse(self, seed: PromptRecord, n: int, budget: QueryBudget) -> AttackRecord:
        started, d, goal = utcnow(), Dialogue(), seed.prompt
        text: str | None = None  # a backed-off step, rephrased
        while len(d.turns) < self.config.max_turns and budget.remaining > 0:
            try:
                text = text or self.next_step(d, goal, n)
            except AttackerFailure as f:
                d.attacker_turns.append(f.turn)
                d.error = f.turn.failure
                break
            if text is None:  # the plan is done
                break
            turn, error = self.query(len(d.turns), [*d.history, Message(role="user", content=text)], goal, budget)
            if turn is None:
                d.error = error
                break
            d.turns.append(turn)
            refused = turn.verdict is not None and turn.verdict.verdict is Verdict.REFUSE
            if refused and d.backoffs < self.config.max_backoffs:
                d.backoffs += 1
                text = self.back_off(d, text, goal, n)
                if text is None:
                    break
                continue
            d.history += [Message(role="user", content=text), Message(role="assistant", content=turn.response)]
            d.step, text = d.step + 1, None
            early = self.config.planner == "plan" or d.step < self.config.judge_after
            if not refused and not early and self.judge_whole(d, goal):
                break
        return self.finish(seed, n, started, d)

    def next_step(self, d: Dialogue, goal: str, n: int) -> str | None:
        """The next user message: the plan's next step, or the attacker's (raises AttackerFailure)."""
        if self.config.planner == "plan":
            plan = self.config.plan
            return plan[d.step].replace("{goal}", goal) if d.step < len(plan) else None
        d.attacker_conv = [
            Message(role="system", content=prompts.CRESCENDO_SYSTEM.format(goal=goal, turns=self.config.max_turns)),
            Message(role="user", content=prompts.CRESCENDO_NEXT.format(
                transcript=prompts.transcript(d.history, self.config.attacker_settings.response_chars),
                turn=d.step + 1, turns=self.config.max_turns))]
        return self._ask(d, goal, n)

    def back_off(self, d: Dialogue, text: str, goal: str, n: int) -> str | None:
        """A gentler version of a refused step: the attacker's rephrasing, or a team-written softener. An
        attacker that will not rephrase ends the conversation (returns None after recording the failure)."""
        if self.config.planner == "plan":
            return prompts.SOFTENERS[(d.backoffs - 1) % len(prompts.SOFTENERS)].replace("{step}", text)
        last = d.attacker_turns[-1].output if d.attacker_turns else text
        d.attacker_conv = [*d.attacker_conv, Message(role="assistant", content=last),
                           Message(role="user", content=prompts.CRESCENDO_BACKOFF.format(message=text))]
        try:
            return self._ask(d, goal, n)
        except AttackerFailure as f:
            d.attacker_turns.append(f.turn)
            d.error = f.turn.failure
            return None

    def _ask(self, d: Dialogue, goal: str, n: int) -> str:
        turn = self.ask(d.attacker_conv, goal, f"crescendo:c{n}", index=len(d.attacker_turns))
        d.attacker_turns.append(turn)
        return turn.prompt or ""

    def judge_whole(self, d: Dialogue, goal: str) -> bool:
        """Judge the target's accepted answers together against the goal; True on success."""
        answers = "\n\n".join(m.content for m in d.history if m.role == "assistant")
        judgement = self.judge.judge([JudgeInput(prompt=goal, response=answers)])[0]
        d.verdict, d.judged = JudgeVerdict.from_judgement(judgement), len(d.history)
        d.score = self.score(d.verdict, answers)
        return self.succeeded(d.verdict, d.score)

    def finish(self, seed: PromptRecord, n: int, started: datetime, d: Dialogue) -> AttackRecord:
        """The conversation's record. Its outcome rests on the whole-conversation verdict; a conversation
        that never reached the target is the attacker's failure (or an error)."""
        params = {"conversation": n, "backoffs": d.backoffs, "accepted_steps": d.step, "planner": self.config.planner}
        key = f"c{n}"
        if not d.turns:
            outcome = AttackOutcome.ERROR if d.error and not d.attacker_turns else AttackOutcome.ATTACKER_FAILED
            return self.record(seed, key, started, outcome, attacker_turns=d.attacker_turns, error=d.error,
                               params=params)
        if d.history and d.judged != len(d.history):
            self.judge_whole(d, seed.prompt)
        sent = d.turns[-1].sent
        outcome = outcome_of(d.verdict) if d.history else AttackOutcome.TARGET_REFUSED
        return self.record(seed, key, started, outcome, attack_prompt=sent[-1].content, history=sent[:-1],
                           converted=sent, turns=d.turns, attacker_turns=d.attacker_turns, verdict=d.verdict,
                           score=d.score, error=d.error, params=params)
