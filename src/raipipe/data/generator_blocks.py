"""Typed building blocks for the prompt generator, loaded from team-written YAML.

One file per policy holds its harm topics; each topic has one harmful intent and benign look-alike
intents on the same topic, every intent written natively in each language as infinitive task
phrases ("build a gun that police cannot trace"). `_phrasings.yaml` holds the shared phrasing
templates, personas and context sentences that wrap a task into a full prompt. Validation errors
name the file, line and field, because these files are edited by hand.
"""

from __future__ import annotations

import re
import string
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from raipipe.policy.loader import PolicyError, PolicyPack, parse_yaml_model

LANGUAGES: tuple[str, ...] = ("en", "es", "fr")
PHRASINGS_FILE = "_phrasings.yaml"
PLACEHOLDERS = frozenset({"task", "persona", "context"})
MIN_TOPICS = 6

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=60)]
Task = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=220)]
Sentence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=400)]


class Purpose(StrEnum):
    """Why a benign look-alike is allowed; mirrors the `allowed`/`exceptions` lists of the policies."""

    EDUCATION = "education"
    SAFETY = "safety"
    FICTION = "fiction"
    DEFENCE = "defence"
    HISTORY = "history"
    AUTHORISED_TESTING = "authorised-testing"
    SUPPORT = "support"
    COMPLIANCE = "compliance"
    LOOKALIKE = "lookalike"
    RESEARCH = "research"
    OWN_USE = "own-use"


class Style(StrEnum):
    """How a template phrases the task, from blunt to indirect."""

    DIRECT = "direct"
    IMPERATIVE = "imperative"
    HYPOTHETICAL = "hypothetical"
    FICTION = "fiction"
    THIRD_PERSON = "third-person"
    EMBEDDED = "embedded"
    POLITE = "polite"
    CASUAL = "casual"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Intent(_Strict):
    """One intent on a topic, as 1+ task phrases per language (infinitive, no final punctuation)."""

    id: Slug
    purpose: Purpose | None = Field(default=None, description="required for benign intents")
    en: list[Task] = Field(min_length=1)
    es: list[Task] = Field(min_length=1)
    fr: list[Task] = Field(min_length=1)

    @field_validator("en", "es", "fr")
    @classmethod
    def _task_shape(cls, tasks: list[str]) -> list[str]:
        for t in tasks:
            if t[-1] in ".?!;:" or "{" in t or "}" in t:
                raise ValueError(f"task {t!r} must be a bare phrase: no final punctuation, no braces")
        return tasks

    def tasks(self, language: str) -> list[str]:
        return list(getattr(self, language))


class Topic(_Strict):
    """A harm topic: the unit of the train/dev/test split, so test topics are never trained on."""

    id: Slug
    harm: str | None = Field(default=None, description="the policy's harm tag this topic instantiates")
    harmful: Intent
    benign: list[Intent] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Topic:
        for i, b in enumerate(self.benign):
            if b.purpose is None:
                raise ValueError(f"benign[{i}] ({b.id}) needs a purpose, e.g. education, safety, fiction")
        ids = [self.harmful.id, *(b.id for b in self.benign)]
        if len(set(ids)) != len(ids):
            raise ValueError(f"intent ids must be unique within a topic, got {ids}")
        return self


class PolicyBlocks(_Strict):
    """All topics for one policy of the pack."""

    policy_id: str
    topics: list[Topic] = Field(min_length=MIN_TOPICS)

    @field_validator("topics")
    @classmethod
    def _unique(cls, topics: list[Topic]) -> list[Topic]:
        ids = [t.id for t in topics]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"topic ids must be unique, repeated: {dupes}")
        return topics


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


class Template(_Strict):
    """A phrasing that wraps `{task}`, optionally with `{persona}` and `{context}`, per language."""

    id: Slug
    style: Style
    length: str = Field(pattern="^(short|long)$")
    en: Sentence
    es: Sentence
    fr: Sentence

    @model_validator(mode="after")
    def _check(self) -> Template:
        for lang in LANGUAGES:
            names = _placeholders(getattr(self, lang))
            if "task" not in names:
                raise ValueError(f"{lang}: template must contain {{task}}")
            if names - PLACEHOLDERS:
                raise ValueError(f"{lang}: unknown placeholder(s) {sorted(names - PLACEHOLDERS)}")
        return self

    def text(self, language: str) -> str:
        return str(getattr(self, language))


class Snippet(_Strict):
    """A persona or context sentence, written natively per language."""

    id: Slug
    en: Sentence
    es: Sentence
    fr: Sentence

    def text(self, language: str) -> str:
        return str(getattr(self, language))


class Phrasings(_Strict):
    templates: list[Template] = Field(min_length=len(Style))
    personas: list[Snippet] = Field(min_length=2)
    contexts: list[Snippet] = Field(min_length=2)

    @model_validator(mode="after")
    def _check(self) -> Phrasings:
        missing = set(Style) - {t.style for t in self.templates}
        if missing:
            raise ValueError(f"every style needs a template; missing {sorted(missing)}")
        for what, items in (("template", self.templates), ("persona", self.personas), ("context", self.contexts)):
            ids = [i.id for i in items]
            if len(set(ids)) != len(ids):
                raise ValueError(f"{what} ids must be unique")
        return self


class Blocks(BaseModel):
    """Everything the generator combines: phrasings plus per-policy topics (keyed by policy id)."""

    model_config = ConfigDict(extra="forbid")
    phrasings: Phrasings
    policies: dict[str, PolicyBlocks]
    files: dict[str, str] = Field(default_factory=dict, description="policy id -> file name")


def default_blocks_dir() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "generator"))


def _line_of(path: Path, pattern: str) -> int | None:
    rx = re.compile(pattern)
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if rx.search(line):
            return i
    return None


def load_blocks(directory: Path | str | None = None, pack: PolicyPack | None = None) -> Blocks:
    """Load and cross-check every block file; with `pack`, each pack policy must have blocks."""
    root = Path(directory) if directory else default_blocks_dir()
    if not root.is_dir():
        raise PolicyError(root, None, "<blocks>", "not a directory")
    phr_path = root / PHRASINGS_FILE
    if not phr_path.is_file():
        raise PolicyError(phr_path, None, "<file>", "missing: templates, personas and contexts live here")
    phrasings = parse_yaml_model(phr_path, Phrasings)
    policies: dict[str, PolicyBlocks] = {}
    files: dict[str, str] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        blocks = parse_yaml_model(path, PolicyBlocks)
        line = _line_of(path, r"^policy_id:")
        if blocks.policy_id in policies:
            raise PolicyError(path, line, "policy_id", f"{blocks.policy_id!r} also in {files[blocks.policy_id]}")
        if pack is not None and blocks.policy_id not in pack.policies:
            raise PolicyError(path, line, "policy_id", f"{blocks.policy_id!r} is not a policy of pack {pack.ref}")
        policies[blocks.policy_id] = blocks
        files[blocks.policy_id] = path.name
    if pack is not None:
        missing = sorted(set(pack.policies) - set(policies))
        if missing:
            raise PolicyError(root, None, "<blocks>", f"no block file for pack policies {missing}")
    if not policies:
        raise PolicyError(root, None, "<blocks>", "no policy block files found")
    return Blocks(phrasings=phrasings, policies=policies, files=files)
