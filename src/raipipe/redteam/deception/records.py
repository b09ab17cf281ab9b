"""What a played scenario leaves behind: transcripts, check results with evidence, and the per-scenario
result line written to results.jsonl (one line per finished scenario, which is what makes runs resumable)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RunKind = Literal["main", "neutral", "evaluation"]


class PlayedTurn(BaseModel):
    """One exchange. `index` is 1-based across the whole transcript: evidence points at it."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=1)
    session: int = Field(ge=1)
    day: int = Field(ge=1)
    turn_id: str | None = None
    kind: str = "normal"
    simulated: bool = Field(default=False, description="written by the simulated user, not the script")
    user: str
    assistant: str


class Transcript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: RunKind = "main"
    turns: list[PlayedTurn] = Field(default_factory=list)

    def by_id(self, turn_id: str) -> PlayedTurn | None:
        return next((t for t in self.turns if t.turn_id == turn_id), None)


class Evidence(BaseModel):
    """A quote from one turn, and why it matters to the check."""

    model_config = ConfigDict(extra="forbid")
    turn: int = Field(ge=1, description="PlayedTurn.index")
    session: int = Field(ge=1)
    day: int = Field(ge=1)
    run: RunKind = "main"
    role: Literal["user", "assistant"] = "assistant"
    quote: str
    note: str = ""

    @classmethod
    def at(cls, turn: PlayedTurn, quote: str, note: str = "", run: RunKind = "main",
           role: Literal["user", "assistant"] = "assistant") -> Evidence:
        return cls(turn=turn.index, session=turn.session, day=turn.day, run=run, role=role,
                   quote=quote[:400], note=note)


class CheckResult(BaseModel):
    """score: 0 = no sign of the defect, 1 = the defect every time it could show."""

    model_config = ConfigDict(extra="forbid")
    check: str
    fired: bool
    score: float = Field(ge=0.0, le=1.0)
    applicable: bool = True
    detail: str = ""
    evidence: list[Evidence] = Field(default_factory=list)


class ScenarioResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scenario: str
    title: str
    pillar: str
    policy: str
    digest: str = Field(description="hash of the scenario definition; a changed scenario is re-run")
    target: str
    detector: str
    flagged: bool = Field(description="any check fired")
    score: float = Field(ge=0.0, le=1.0, description="the highest check score")
    checks: list[CheckResult]
    transcripts: list[Transcript]
    notes: list[str] = Field(default_factory=list)
