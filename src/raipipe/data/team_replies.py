"""Team-written replies to the generator's benign intents, in languages the embedded model cannot write.

The embedded 135M model writes repetition loops and word salad in Spanish and French, so a benign look-alike
in those languages has no fluent helpful answer of the model's own: a pretraining demonstration could not be
built, and post-training's pairs taught "refuse in Spanish" (a fluent refusal beat salad). The team wrote
replies per generator intent (the allowed thing a benign request asks for, e.g. "support a friend who says she
thinks about ending her life"), two per intent in different voices; a request built from that intent in any
phrasing gets one of them, chosen by its id, so a rerun picks the same one. Pretraining uses them in
demonstrations (optional; measured in benchmarks/README.md), post-training as helpful candidates for benign
generator prompts (`sample.team_replies`).

File: JSONL, one reply per line: language, policy_id, topic, intent, variant, answer, author."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
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


def _id_order(record_id: str) -> int:
    """A fixed pseudo-random number per record id: which reply a request gets, and the order prompts are picked."""
    return int(hashlib.sha256(record_id.encode()).hexdigest(), 16)


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
        pick = _id_order(record.id) % len(options)
        return options[pick].answer

    def pick_prompts(self, records: Iterable[PromptRecord], per_language: int, exclude: Collection[str] = (),
                     fits: Callable[[PromptRecord], bool] | None = None) -> list[PromptRecord]:
        """Up to `per_language` benign records with a reply in each of the replies' languages, taken in turn
        from every policy (so no policy dominates) in an order fixed by record id: the same records every run.
        Records whose id is in `exclude` (already trained on), or that `fits` turns down (e.g. a prompt too
        long for the trainer to keep), are skipped."""
        by_policy: dict[str, dict[str, list[PromptRecord]]] = defaultdict(lambda: defaultdict(list))
        for r in records:
            if r.id not in exclude and self.for_record(r) is not None and (fits is None or fits(r)):
                by_policy[r.language.split("-")[0]][r.policy_id or ""].append(r)
        picked: list[PromptRecord] = []
        for lang in sorted(by_policy):
            queues = [sorted(rs, key=lambda r: _id_order(r.id))
                      for _, rs in sorted(by_policy[lang].items())]
            taken: list[PromptRecord] = []
            for rank in range(max(map(len, queues))):
                taken += [q[rank] for q in queues if rank < len(q)]
            picked += taken[:per_language]
        return picked


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
