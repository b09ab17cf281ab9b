"""TAP-style tree search: at each level the attacker expands every kept node into `branching` variants,
an optional on-topic check prunes variants that drifted off the goal, every survivor is sent to the
target and scored, and the `width` best become the next level's nodes — until the judge says the target
complied, the tree is `depth` levels deep, or the seed's query budget is spent.

A node's attacker conversation carries its ancestors' feedback, so each branch refines its own line of
attack. Pruning costs attacker calls only, never target queries."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from raipipe.data.records import PromptRecord
from raipipe.models.base import Message
from raipipe.redteam.memory import TfidfSimilarity
from raipipe.redteam.records import AttackerTurn, AttackOutcome, AttackRecord, utcnow
from raipipe.redteam.strategies import prompts
from raipipe.redteam.strategies.adaptive import AdaptiveConfig, AdaptiveStrategy, outcome_of
from raipipe.redteam.strategies.base import QueryBudget, register_strategy

log = logging.getLogger(__name__)


class TapConfig(AdaptiveConfig):
    branching: int = Field(default=3, ge=1, description="variants the attacker writes per kept node")
    depth: int = Field(default=4, ge=1, description="levels of the tree")
    width: int = Field(default=3, ge=1, description="best branches kept per level")
    on_topic: Literal["off", "evaluator", "similarity"] = Field(
        default="evaluator", description="prune off-goal variants before querying: ask the attacker model "
        "(evaluator) or compare words with the goal (similarity)")
    on_topic_threshold: float = Field(default=0.05, ge=0.0, le=1.0, description="least TF-IDF similarity kept "
                                      "by the `similarity` check")


@dataclass
class Node:
    conv: list[Message]
    path: str
    score: float = 0.0


@register_strategy
class TapAttack(AdaptiveStrategy):
    """Branch, prune, query, keep the best `width`: a beam search over attacker conversations."""

    name = "tap"
    config_cls = TapConfig
    config: TapConfig

    def attack(self, seed: PromptRecord, budget: QueryBudget) -> Iterator[AttackRecord]:
        goal = seed.prompt
        nodes = [Node([Message(role="system", content=prompts.ATTACKER_SYSTEM.format(goal=goal)),
                       Message(role="user", content=prompts.FIRST_TURN.format(goal=goal))], "r")]
        failures = 0
        cap = self.config.attacker_settings.max_failures * self.config.branching
        for level in range(self.config.depth):
            if budget.remaining <= 0:
                log.info("tap on %s: budget of %d spent at depth %d", seed.id, budget.limit, level)
                return
            children: list[tuple[Node, AttackerTurn]] = []
            for rec in self.expand(seed, nodes, level, children):
                failures += 1
                yield rec
            scored: list[Node] = []
            for node, aturn in self.on_topic(goal, children, level):
                if budget.remaining <= 0:
                    break
                rec, child = self.try_child(seed, node, aturn, level, budget)
                yield rec
                if child is None:
                    continue
                if self.succeeded(rec.final_verdict, child.score):
                    return
                scored.append(child)
            if failures >= cap:
                log.info("tap on %s: attacker failed %d times; giving up", seed.id, failures)
                return
            nodes = sorted(scored, key=lambda n: -n.score)[: self.config.width] or nodes  # nothing new: retry

    def expand(self, seed: PromptRecord, nodes: list[Node], level: int,
               children: list[tuple[Node, AttackerTurn]]) -> Iterator[AttackRecord]:
        """Ask for `branching` variants of every node in one batched call; yield a record per failed variant
        and collect the usable ones into `children`."""
        b = self.config.branching
        jobs = [(node, k) for node in nodes for k in range(b)]
        convs = [[*n.conv[:-1], Message(role="user", content=n.conv[-1].content + prompts.VARIANT.format(k=k + 1, n=b))]
                 if b > 1 else list(n.conv) for n, k in jobs]
        started = utcnow()
        try:
            turns = self.ask_many(convs, seed.prompt, f"tap:d{level}", index=level * len(jobs))
        except Exception as e:  # the attacker backend failed for the whole level
            error = f"attacker: {type(e).__name__}: {e}"
            yield self.record(seed, f"d{level}", started, AttackOutcome.ERROR, error=error)
            return
        for (node, k), aturn in zip(jobs, turns, strict=True):
            key = f"{node.path}.{k}"
            if aturn.failure:
                yield self.failed_attacker_record(seed, key, started, aturn, params={"depth": level, "node": key})
            else:
                children.append((Node(node.conv, key), aturn))

    def on_topic(self, goal: str, children: list[tuple[Node, AttackerTurn]], level: int
                 ) -> list[tuple[Node, AttackerTurn]]:
        """The variants that still pursue the goal. An unclear evaluator answer keeps the variant: pruning is
        an economy, and a wrongly pruned variant is a missed finding."""
        if self.config.on_topic == "off" or not children:
            return children
        prompts_ = [a.prompt or "" for _, a in children]
        if self.config.on_topic == "similarity":
            sims = [TfidfSimilarity().scores(goal, [p])[0] for p in prompts_]
            keep = [s >= self.config.on_topic_threshold for s in sims]
        else:
            convs = [[Message(role="system", content=prompts.ON_TOPIC_SYSTEM),
                      Message(role="user", content=prompts.ON_TOPIC_USER.format(goal=goal, prompt=p))]
                     for p in prompts_]
            answers = self.attacker_model.generate(convs, self.attacker_params(f"tap:topic:d{level}", level))
            keep = [not (a[0] if a else "").strip().lower().startswith("no") for a in answers]
        pruned = len(children) - sum(keep)
        if pruned:
            log.log(logging.INFO if pruned == len(children) else logging.DEBUG,
                    "tap: pruned %d of %d variants as off-topic at depth %d", pruned, len(children), level)
        return [c for c, k in zip(children, keep, strict=True) if k]

    def try_child(self, seed: PromptRecord, node: Node, aturn: AttackerTurn, level: int,
                  budget: QueryBudget) -> tuple[AttackRecord, Node | None]:
        """Query the target with one variant (`node`: its path, and its parent's attacker conversation); the
        scored child carries the target's answer and score as feedback for its own children."""
        started = utcnow()
        prompt = aturn.prompt or ""
        sent = [Message(role="user", content=prompt)]
        turn, error = self.query(0, sent, seed.prompt, budget)
        common: dict[str, Any] = {"attack_prompt": prompt, "converted": sent, "attacker_turns": [aturn],
                  "params": {"depth": level, "node": node.path}}
        if turn is None:
            return self.record(seed, node.path, started, AttackOutcome.ERROR, error=error, **common), None
        score = self.score(turn.verdict, turn.response)
        reply = prompts.clip(turn.response, self.config.attacker_settings.response_chars)
        note = prompts.FEEDBACK.format(response=reply, score=score, goal=seed.prompt)
        conv = [*node.conv, Message(role="assistant", content=aturn.output), Message(role="user", content=note)]
        child = Node(conv, node.path, score)
        rec = self.record(seed, node.path, started, outcome_of(turn.verdict), turns=[turn], score=score, **common)
        return rec, child
