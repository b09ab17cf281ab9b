"""Load scenario YAML, pointing every error at the file, line and field — including the cross-references
pydantic cannot see (turn ids, check names, what each check needs, the policy's pillar)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from raipipe.errors import ConfigError
from raipipe.policy.loader import _read_text, load_pack, parse_yaml_model, yaml_line
from raipipe.redteam.deception.checks import CHECKS
from raipipe.redteam.deception.schema import Scenario

Problem = tuple[tuple[Any, ...], str]


def default_scenarios_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "deception"))


@lru_cache(maxsize=1)
def _default_pillars() -> dict[str, str]:
    return {pid: p.pillar.value for pid, p in load_pack().policies.items()}


def _turn_refs(s: Scenario) -> Iterator[tuple[tuple[Any, ...], str]]:
    for i, c in enumerate(s.commitments):
        for j, d in enumerate(c.due):
            yield ("commitments", i, "due", j), d
    if s.hidden_goal:
        for j, p in enumerate(s.hidden_goal.probes):
            yield ("hidden_goal", "probes", j), p
    for i, fp in enumerate(s.false_premises):
        yield ("false_premises", i, "turn"), fp.turn


def _check_problems(s: Scenario) -> Iterator[Problem]:
    known = CHECKS.all()
    for i, name in enumerate(s.checks):
        cls = known.get(name)
        if cls is None:
            yield ("checks", i), f"unknown check {name!r}; known: {sorted(known)}"
        elif cls.requires and not any(getattr(s, f) for f in cls.requires):
            yield ("checks", i), f"check {name!r} needs `{' or '.join(cls.requires)}` in the scenario"


def scenario_problems(s: Scenario) -> list[Problem]:
    """Everything wrong with a parsed scenario that its field types alone cannot catch."""
    problems: list[Problem] = []
    ids = [t.id for sess in s.sessions for t in sess.turns if t.id]
    if len(ids) != len(set(ids)):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        problems.append((("sessions",), f"turn ids must be unique; repeated: {repeated}"))
    turn_at = s.turn_ids()
    for loc, ref in _turn_refs(s):
        if ref not in turn_at:
            problems.append((loc, f"no turn has id {ref!r}"))
    for i, c in enumerate(s.commitments):
        if c.made_in > len(s.sessions):
            problems.append((("commitments", i, "made_in"), f"there are only {len(s.sessions)} sessions"))
        for j, d in enumerate(c.due):
            if d in turn_at and turn_at[d][0] + 1 <= c.made_in:
                problems.append((("commitments", i, "due", j), f"turn {d!r} is not after session {c.made_in}"))
    days = [sess.day for sess in s.sessions]
    if days != sorted(days):
        problems.append((("sessions",), f"session days must not go backwards: {days}"))
    for i, sess in enumerate(s.sessions):
        if not sess.turns and sess.simulated_user is None:
            problems.append((("sessions", i, "turns"), "a session needs scripted turns or a simulated_user"))
    known_refs = {f.id for f in s.facts} | {c.id for c in s.commitments}
    for i, sess in enumerate(s.sessions):
        for j, t in enumerate(sess.turns):
            for k, ref in enumerate(t.pressures):
                if ref not in known_refs:
                    problems.append((("sessions", i, "turns", j, "pressures", k), f"no fact or commitment {ref!r}"))
    if s.sandbag:
        qids = [q.id for q in s.sandbag.questions]
        if len(qids) != len(set(qids)):
            problems.append((("sandbag", "questions"), "question ids must be unique"))
    expected = _default_pillars().get(s.policy)
    if expected is not None and expected != s.pillar.value:
        problems.append((("pillar",), f"policy {s.policy} belongs to pillar {expected!r}, not {s.pillar.value!r}"))
    problems.extend(_check_problems(s))
    return problems


def load_scenario(path: Path | str) -> Scenario:
    path = Path(path)
    text = _read_text(path, ConfigError)
    scenario = parse_yaml_model(path, Scenario, text=text, error=ConfigError)
    problems = scenario_problems(scenario)
    if problems:
        loc, msg = problems[0]
        line = yaml_line(text, loc)
        extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(path, line, ".".join(str(p) for p in loc), msg + extra)
    return scenario


def load_scenarios(directory: Path | str | None = None) -> list[Scenario]:
    """Every *.yaml scenario in a directory (default: the shipped set), sorted by file name; ids unique."""
    root = Path(directory) if directory else default_scenarios_dir()
    if root.is_file():
        return [load_scenario(root)]
    if not root.is_dir():
        raise ConfigError(root, None, None, "no such scenario directory", hint="give a folder of scenario YAML files")
    out: dict[str, tuple[Path, Scenario]] = {}
    for path in sorted(root.glob("*.y*ml")):
        s = load_scenario(path)
        if s.id in out:
            raise ConfigError(path, 1, "id", f"duplicate scenario id {s.id!r} (also in {out[s.id][0].name})")
        out[s.id] = (path, s)
    if not out:
        raise ConfigError(root, None, None, "no scenario files (*.yaml) found")
    return [s for _, s in out.values()]


def scenario_digest(s: Scenario) -> str:
    blob = json.dumps(s.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
