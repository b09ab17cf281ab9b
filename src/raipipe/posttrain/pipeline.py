"""`raipipe posttrain`: the steps of `raipipe.posttrain.steps`, run in order, each recorded in the store.

A step runs unless the store says it is done under the same config digest; so a crash anywhere
resumes at the step that was running, and a changed config re-runs the steps it affects (with a
warning). Inside a step, sampling and ranking resume item by item through the store and evaluation
through the response cache. `only` runs the named steps, `start` a step and every one after it;
either way they run even when done, and earlier steps' outputs come from the store."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from raipipe.policy.loader import load_pack
from raipipe.posttrain.config import PostTrainConfig
from raipipe.posttrain.steps import PlanError, Step, StepContext, StepNotReady, StepOutput, default_steps
from raipipe.posttrain.steps.base import digest_of
from raipipe.posttrain.steps.data import NeedsHumanRankings
from raipipe.posttrain.steps.ledger import DONE, StepLedger
from raipipe.posttrain.steps.training import dpo_pairs
from raipipe.store.db import open_store

console = Console(stderr=True)

__all__ = ["NeedsHumanRankings", "PostTrainPipeline"]


class PostTrainPipeline:
    """A list of steps over one context; `run` decides which to run, skip or re-run."""

    def __init__(self, config: PostTrainConfig, steps: Sequence[Step] | None = None):
        self.config = config
        self.out = config.out
        self.sessions = open_store(config.store_url)
        self.pack = load_pack(config.dpo.policy_pack)
        self.out.mkdir(parents=True, exist_ok=True)
        config.save(self.out / "config.yaml")
        self.steps = list(steps) if steps is not None else default_steps()
        self.context = StepContext(config, self.sessions, self.pack)
        self.ledger = StepLedger(self.sessions, str(self.out.resolve()))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise PlanError(f"unknown step {name!r}; the steps are {', '.join(self.names)}")

    def _producer(self, kind: type[StepOutput]) -> Step:
        return next(s for s in self.steps if s.output is kind)

    def digests(self) -> dict[str, str]:
        """Each step's config digest: what decides it, and the digests of the steps it reads from."""
        found: dict[str, str] = {}
        for s in self.steps:
            ups = [found[self._producer(kind).name] for kind in s.digest_inputs(self.context)]
            found[s.name] = digest_of(s.name, s.determined_by(self.context), ups)
        return found

    def plan(self, only: Sequence[str] = (), start: str | None = None) -> list[Step]:
        """The steps to consider: all of them, the `only` ones (in pipeline order), or `start` onwards."""
        if only and start:
            raise PlanError("give --only or --from, not both")
        for name in [*only, *([start] if start else [])]:
            self.step(name)
        if start:
            return self.steps[self.names.index(start):]
        return [s for s in self.steps if s.name in only] if only else list(self.steps)

    def run(self, only: Sequence[str] = (), start: str | None = None) -> dict[str, StepOutput]:
        """Run the plan; returns each planned step's output (run now or recorded earlier), by step name."""
        planned = self.plan(only, start)
        forced = bool(only or start)
        digests = self.digests()
        for s in planned:
            s.check(self.context)
        results: dict[str, StepOutput] = {}
        for s in planned:
            self._load_inputs(s, digests, planned)
            results[s.name] = self._run_step(s, digests[s.name], forced)
        return results

    def _load_inputs(self, step: Step, digests: dict[str, str], planned: list[Step]) -> None:
        """Inputs produced by steps outside the plan come from their done records in the store."""
        for kind in step.inputs:
            if self.context.has(kind):
                continue
            producer = self._producer(kind)
            record = self.ledger.get(producer.name)
            if record is None or record.status != DONE:
                state = record.status if record else "never run"
                raise StepNotReady(f"step {step.name!r} needs the output of {producer.name!r}, which is "
                                   f"{state}: run `raipipe posttrain --from {producer.name}` (or without options)")
            if record.config_digest != digests[producer.name]:
                console.print(f"[yellow]step {producer.name!r} ran under another config than the current one; "
                              f"{step.name!r} uses its output as is (re-run with --from {producer.name})[/]")
            self.context.put(producer.output.model_validate(record.summary))

    def _run_step(self, step: Step, digest: str, forced: bool) -> StepOutput:
        record = self.ledger.get(step.name)
        if record is not None and record.status == DONE and not forced:
            if record.config_digest == digest:
                output = step.output.model_validate(record.summary)
                self.context.put(output)
                console.print(f"step {step.name}: done earlier, skipped")
                return output
            console.print(f"[yellow]step {step.name}: the config that decides it changed since it ran "
                          f"(digest {record.config_digest} -> {digest}); running it again[/]")
        elif record is not None and record.status != DONE and not forced:
            console.print(f"step {step.name}: {record.status} last time (attempt {record.attempts}), running again")
        self.ledger.started(step.name, digest)
        try:
            output = step.run(self.context)
        except BaseException as exc:
            self.ledger.failed(step.name, digest, exc)
            raise
        self.ledger.done(step.name, digest, output)
        self.context.put(output)
        console.print(f"step {step.name}: done")
        return output

    def dpo_pairs(self, pairs: list) -> list:
        """The pairs DPO trains on (see `steps.training.dpo_pairs`)."""
        return dpo_pairs(self.config, pairs)
