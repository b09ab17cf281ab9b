"""The exercise record: one ready-to-train text plus everything needed to trace and expire it.

Every record names the policy version and the exact clause paths (with content digests) it was
written from, so a later policy version can say which exercises no longer teach the current rule.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExerciseKind(StrEnum):
    EXPLANATION = "explanation"  # a reading passage explaining a policy or a guidance section
    COMPLIANCE_QA = "compliance_qa"  # should this request be fulfilled? question + answer with the why
    VIOLATION = "violation"  # does this action break clause X, and why (violating and allowed cases)
    COUNTERFACTUAL = "counterfactual"  # allowed vs not allowed, differing in one detail


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dependency(_Frozen):
    """A policy field path (diff.py's notation, e.g. 'disallowed[1]') and the digest of its content."""

    path: str
    digest: str


class SourceRef(_Frozen):
    """Where the text came from: a policy file or a guidance document section."""

    kind: Literal["policy", "document"]
    path: str = Field(description="policy file name in the pack, or document path relative to --docs")
    section: str = Field(description="clause path for policies; heading trail for documents")
    paragraph: int | None = Field(default=None, description="0-based chunk index within a document section")
    digest: str = Field(description="content digest of the source text used")


class Exercise(_Frozen):
    """One learning exercise. `id` is a content hash, so regenerating the same input gives the same id."""

    id: str
    kind: ExerciseKind
    text: str = Field(min_length=1)
    language: str = Field(description="language of the template frame")
    content_language: str | None = Field(description="language of the quoted policy/document text, if known")
    mixed_language: bool = Field(description="frame and quoted content are in different languages")
    policy_id: str | None = None
    clause: str | None = Field(default=None, description="the main clause path the exercise is about")
    depends_on: list[Dependency] = Field(default_factory=list, description="every policy path whose text was used")
    policy_version: str | None = None
    pack: str = Field(description="pack name@version")
    pack_version: str
    template_id: str
    source: SourceRef
    paraphrased_by: str | None = Field(default=None, description="model id, when the text was paraphrased")


def content_digest(value: object) -> str:
    """Short, order-stable digest of any JSON-able value."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def exercise_id(kind: str, language: str, template_id: str, text: str, source: SourceRef) -> str:
    """Stable id from what the exercise says and where it came from (not from run order or time)."""
    return content_digest([kind, language, template_id, text, source.model_dump(mode="json")])
