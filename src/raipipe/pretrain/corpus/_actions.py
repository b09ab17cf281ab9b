"""What happens to a scored document: drop, recontextualise or keep, by per-severity thresholds.

Recontextualising wraps the unchanged text in a team-written frame that names the harm, the policy it
falls under and why such content is avoided. Frames are filled only from the policy pack's names and
fixed per-pillar sentences, so the wrapper can never add detail the document did not have."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from raipipe.errors import ConfigError
from raipipe.policy.loader import PolicyPack, parse_yaml_model
from raipipe.policy.schema import Pillar, Severity
from raipipe.pretrain.corpus._config import ActionConfig


class Action(StrEnum):
    KEEP = "keep"
    RECONTEXTUALISE = "recontextualise"
    DROP = "drop"


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    before: str = Field(min_length=1)
    after: str = Field(min_length=1)


class FrameSet(BaseModel):
    """One language's frames plus the localised names and reasons they are filled with."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    language: str
    severity: dict[Severity, str]
    pillars: dict[Pillar, str]
    why: dict[Pillar, str]
    frames: list[Frame] = Field(min_length=1)


def default_frames_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "pretrain" / "recontext"))


def load_frames(directory: str | Path | None = None) -> dict[str, FrameSet]:
    """Every `<lang>.yaml` in the folder, each checked to cover every pillar and severity."""
    root = Path(directory) if directory else default_frames_dir()
    sets: dict[str, FrameSet] = {}
    for path in sorted(root.glob("*.yaml")):
        fs: FrameSet = parse_yaml_model(path, FrameSet, error=ConfigError)
        missing = sorted({*Pillar} - set(fs.pillars) | {*Pillar} - set(fs.why) | {*Severity} - set(fs.severity))
        if missing:
            raise ConfigError(path, None, "pillars/why/severity", f"no entry for {missing}")
        sets[fs.language] = fs
    if not sets:
        raise ConfigError(root, None, None, "no recontextualisation frames (<lang>.yaml) found")
    return sets


def harm_tag(policy_id: str) -> str:
    return f"<|harm:{policy_id}|>"


@dataclass(frozen=True)
class Recontextualiser:
    frames: dict[str, FrameSet]
    pack: PolicyPack
    default_language: str = "en"
    harm_tags: bool = False

    def parts(self, policy_id: str, doc_id: str, lang: str | None) -> tuple[str, str, str]:
        """(frame id, text before, text after) for this document: the frame is picked by a hash of the
        document id, so reruns and other executors choose the same one."""
        fs = self.frames.get(lang or "") or self.frames.get(self.default_language) or next(iter(self.frames.values()))
        frame = fs.frames[int(hashlib.sha256(doc_id.encode()).hexdigest(), 16) % len(fs.frames)]
        pol = self.pack.get(policy_id)
        values = {"policy_id": pol.id, "title": pol.title, "pillar": fs.pillars[pol.pillar],
                  "severity": fs.severity[pol.severity], "why": fs.why[pol.pillar]}
        before, after = frame.before.format(**values), frame.after.format(**values)
        if self.harm_tags:
            before = f"{harm_tag(pol.id)}\n{before}"
        return frame.id, before, after

    def wrap(self, text: str, policy_id: str, doc_id: str, lang: str | None) -> str:
        _, before, after = self.parts(policy_id, doc_id, lang)
        return f"{before}\n\n{text}\n\n{after}"


def decide(score: float, severity: str, config: ActionConfig) -> Action:
    """Thresholds of the policy's severity; a document no policy matched is kept."""
    if not severity:
        return Action.KEEP
    rule = config.rules[Severity(severity)]
    if rule.drop_at is not None and score >= rule.drop_at:
        return Action.DROP
    if rule.recontextualise_at is not None and score >= rule.recontextualise_at:
        return Action.RECONTEXTUALISE
    return Action.KEEP


def frames_digest(directory: str | Path | None = None) -> str:
    """Recorded in shard markers: changed frames mean changed outputs."""
    root = Path(directory) if directory else default_frames_dir()
    h = hashlib.sha256()
    for path in sorted(root.glob("*.yaml")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


__all__ = ["Action", "Frame", "FrameSet", "Recontextualiser", "decide", "harm_tag", "load_frames"]
