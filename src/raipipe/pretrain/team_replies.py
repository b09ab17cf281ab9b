"""Team-written replies to the generator's benign intents, for demonstrations in languages the answer model
cannot write.

A demonstration pair is a harmful request with the policy-written refusal and its benign look-alike with a
reply that really answers it. The embedded 135M model writes repetition loops in Spanish and French, so it has
no judged-compliant reply there and those pairs could not be built. The team wrote replies per generator intent
(the allowed thing a benign request asks for, e.g. "support a friend who says she thinks about ending her
life"), two per intent in different voices; a request built from that intent in any phrasing gets one of them,
chosen by its id, so a rerun picks the same one. What they did to the probe when added to the default mix is
in benchmarks/README.md (not adopted as the default).

File: JSONL, one reply per line: language, policy_id, topic, intent, variant, answer, author."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from raipipe.data.io import read_models
from raipipe.data.records import Label, PromptRecord
from raipipe.errors import DatasetError

TEAM_REPLY_ORIGIN = "team-reply"


class TeamReply(BaseModel):
    """One helpful reply to one benign generator intent, in one language."""

    model_config = ConfigDict(extra="forbid")
    language: str = Field(min_length=2)
    policy_id: str = Field(min_length=1)
    topic: str = Field(min_length=1, description="generator topic id")
    intent: str = Field(min_length=1, description="the topic's benign intent id")
    variant: str = Field(min_length=1, description="tells apart replies to the same intent")
    answer: str = Field(min_length=1)
    author: str = Field(min_length=1, description="who wrote it (a team member, never a model)")


Key = tuple[str, str, str, str]


def _key(language: str, policy_id: str, topic: str, intent: str) -> Key:
    return language.split("-")[0], policy_id, topic, intent


class TeamReplies:
    """Replies by (language, policy, topic, intent), with the file's digest for manifests."""

    def __init__(self, path: Path, replies: dict[Key, list[TeamReply]], digest: str):
        self.path, self._replies, self.digest = path, replies, digest

    def __len__(self) -> int:
        return sum(map(len, self._replies.values()))

    def answers(self) -> list[str]:
        """Every reply text (e.g. to check it shares no text with held-out probe material)."""
        return [r.answer for replies in self._replies.values() for r in replies]

    @property
    def languages(self) -> set[str]:
        return {k[0] for k in self._replies}

    def for_record(self, record: PromptRecord) -> str | None:
        """A reply for a benign generator request, or None (harmful, not from the generator, or no reply)."""
        generator = (record.metadata or {}).get("generator") or {}
        if record.label != Label.BENIGN or not record.policy_id or "intent" not in generator:
            return None
        options = self._replies.get(_key(record.language, record.policy_id, generator.get("topic", ""),
                                         generator["intent"]))
        if not options:
            return None
        pick = int(hashlib.sha256(record.id.encode()).hexdigest(), 16) % len(options)
        return options[pick].answer


def default_team_replies_path() -> Path:
    return Path(str(resources.files("raipipe.resources") / "pretrain" / "team_replies.jsonl"))


def load_team_replies(path: Path | str | None = None) -> TeamReplies:
    """Read and validate a team-reply file (default: the shipped one); errors name file, line and field."""
    p = Path(path) if path is not None else default_team_replies_path()
    replies: dict[Key, list[TeamReply]] = {}
    seen: dict[tuple[Key, str], int | None] = {}
    for line, reply in read_models(p, TeamReply, "answer", "team replies"):
        key = _key(reply.language, reply.policy_id, reply.topic, reply.intent)
        if (key, reply.variant) in seen:
            raise DatasetError(p, line, "variant", f"{reply.variant!r} of {'/'.join(key)} is already on line "
                               f"{seen[(key, reply.variant)]}")
        seen[(key, reply.variant)] = line
        replies.setdefault(key, []).append(reply)
    return TeamReplies(p, replies, hashlib.sha256(p.read_bytes()).hexdigest()[:16])
