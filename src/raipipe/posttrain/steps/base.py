"""The step contract of `raipipe posttrain`: a step has a name, declares the typed outputs of earlier
steps it reads and the typed output it produces, and does its work in one `run(context)`.

Outputs are small pydantic models; the pipeline records each one in the store when its step finishes,
so a later run (or `--only` / `--from`) gets earlier steps' outputs from there, not from files whose
existence once meant "done". Which part of the config determines a step (`determined_by`) is declared
beside it, so a changed config re-runs exactly the steps it affects."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from raipipe.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from raipipe.policy.loader import PolicyPack
    from raipipe.posttrain.config import PostTrainConfig


class StepOutput(BaseModel):
    """What a step hands on; stored as its summary JSON, so keep it small (paths, ids, counts, verdicts)."""

    model_config = ConfigDict(extra="forbid")


OutputT = TypeVar("OutputT", bound=StepOutput)


class StepNotReady(UsageError, RuntimeError):
    """A step needs the output of an earlier step that has not finished (run that one first)."""


class PlanError(UsageError, ValueError):
    """An unknown step name, or --only and --from together."""


class StepContext:
    """What every step sees: the run's config, output directory, store and policy pack, and the outputs of
    the steps before it (this run's, or recorded by an earlier run)."""

    def __init__(self, config: PostTrainConfig, sessions: sessionmaker[Session], pack: PolicyPack):
        self.config = config
        self.out = Path(config.out)
        self.sessions = sessions
        self.pack = pack
        self._outputs: dict[type[StepOutput], StepOutput] = {}

    def put(self, output: StepOutput) -> None:
        self._outputs[type(output)] = output

    def has(self, kind: type[StepOutput]) -> bool:
        return kind in self._outputs

    def get(self, kind: type[OutputT]) -> OutputT:
        found = self._outputs.get(kind)
        if found is None:
            raise StepNotReady(f"no {kind.__name__} in this run: the step producing it has not finished")
        assert isinstance(found, kind)
        return found


class Step(ABC):
    """One step of the pipeline. Subclasses set `name`, `inputs`, `output` and implement `run`."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[type[StepOutput], ...]] = ()
    output: ClassVar[type[StepOutput]]

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        """The config (and policy) values that decide this step's result; part of its digest."""
        return {}

    def digest_inputs(self, ctx: StepContext) -> tuple[type[StepOutput], ...]:
        """The inputs whose producers' digests flow into this one's (all of them unless narrowed)."""
        return self.inputs

    def check(self, ctx: StepContext) -> None:
        """Cheap validation run for every planned step before any runs: fail before an hour of work."""
        return None

    @abstractmethod
    def run(self, ctx: StepContext) -> StepOutput:
        """Do the work (resuming item by item where the step can) and return the output."""

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def digest_of(name: str, determined_by: dict[str, Any], input_digests: list[str]) -> str:
    """A step's config digest: its own deciding values plus the digests of the steps it reads from."""
    blob = json.dumps({"step": name, "config": determined_by, "inputs": input_digests}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
