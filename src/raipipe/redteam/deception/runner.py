"""Run scenarios against a target: play, check, append one result line per scenario to results.jsonl.

Resumable per scenario: a scenario whose result line is already there (same scenario digest) is not
played again, so a crash costs at most the scenario in flight. A run folder belongs to one target and one
detector (run.json); resuming it with another is refused rather than mixing two models in one report."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raipipe.errors import UsageError
from raipipe.fileio import atomic_write_json, atomic_write_lines
from raipipe.models.base import ChatModel
from raipipe.redteam.deception.checks import CHECKS, CheckContext
from raipipe.redteam.deception.detect import ClaimDetector, PatternDetector
from raipipe.redteam.deception.loader import scenario_digest
from raipipe.redteam.deception.player import Player
from raipipe.redteam.deception.records import CheckResult, ScenarioResult
from raipipe.redteam.deception.schema import Scenario

RESULTS = "results.jsonl"
MANIFEST = "run.json"


class RunManifest(BaseModel):
    """What a run folder was made with; saved once, compared on resume."""

    model_config = ConfigDict(extra="forbid")
    target: str
    detector: str
    user_model: str | None = None
    seed: int = 0
    scenarios: list[str] = Field(default_factory=list, description="ids in the order they were given")


def read_results(out: Path) -> list[ScenarioResult]:
    """Valid result lines; a torn last line (crash mid-write) is dropped and the file repaired."""
    path = out / RESULTS
    if not path.exists():
        return []
    good, raw, torn = [], [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            good.append(ScenarioResult.model_validate_json(line))
            raw.append(line)
        except ValidationError:
            torn = True
    if torn or not path.read_bytes().endswith(b"\n"):
        atomic_write_lines(path, raw)
    return good


def _append(out: Path, result: ScenarioResult) -> None:
    with open(out / RESULTS, "a", encoding="utf-8") as f:
        f.write(result.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def _check_manifest(out: Path, manifest: RunManifest) -> None:
    path = out / MANIFEST
    if path.exists():
        old = RunManifest.model_validate_json(path.read_text(encoding="utf-8"))
        for key in ("target", "detector", "user_model", "seed"):
            if getattr(old, key) != getattr(manifest, key):
                raise UsageError(f"{out} was run with {key} {getattr(old, key)!r}, not {getattr(manifest, key)!r}",
                                 hint="use a new --out folder, or the same settings to resume")
    atomic_write_json(path, manifest.model_dump(mode="json"), indent=2)


def evaluate_scenario(s: Scenario, player: Player, detector: ClaimDetector) -> ScenarioResult:
    """Play one scenario (and its paired quiz runs, if any) and run its checks."""
    transcript, notes = player.play(s)
    paired = player.play_paired(s)
    ctx = CheckContext(scenario=s, transcript=transcript, detector=detector, paired=paired)
    results: list[CheckResult] = [CHECKS.get(name)().run(ctx) for name in s.checks]
    scored = [r for r in results if r.applicable]
    return ScenarioResult(
        scenario=s.id, title=s.title, pillar=s.pillar.value, policy=s.policy, digest=scenario_digest(s),
        target=player.target.model_id, detector=detector.detector_id, flagged=any(r.fired for r in scored),
        score=max((r.score for r in scored), default=0.0), checks=results,
        transcripts=[transcript, *paired.values()], notes=notes)


def run_deception(scenarios: Sequence[Scenario], target: ChatModel, out: Path | str,
                  detector: ClaimDetector | None = None, user_model: ChatModel | None = None, seed: int = 0,
                  on_result: Callable[[ScenarioResult, bool], None] | None = None) -> list[ScenarioResult]:
    """Results for every scenario, in the order given; finished ones are read back, not re-played.

    `on_result(result, resumed)` is called once per scenario (progress display)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    detector = detector or PatternDetector()
    _check_manifest(out, RunManifest(target=target.model_id, detector=detector.detector_id, seed=seed,
                                     user_model=user_model.model_id if user_model else None,
                                     scenarios=[s.id for s in scenarios]))
    done = {(r.scenario, r.digest): r for r in read_results(out)}
    player = Player(target, user_model=user_model, seed=seed)
    results = []
    for s in scenarios:
        key = (s.id, scenario_digest(s))
        resumed = key in done
        result = done[key] if resumed else evaluate_scenario(s, player, detector)
        if not resumed:
            _append(out, result)
        results.append(result)
        if on_result:
            on_result(result, resumed)
    return results


def load_results(out: Path | str) -> list[ScenarioResult]:
    """The latest result per scenario (a re-run after a scenario changed supersedes the old line)."""
    latest: dict[str, ScenarioResult] = {}
    for r in read_results(Path(out)):
        latest[r.scenario] = r
    return list(latest.values())


def dump_json(results: Sequence[ScenarioResult]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in results], indent=2)
