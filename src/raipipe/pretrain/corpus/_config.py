"""Typed configuration of a corpus run: what to read, how to score, what to do per severity, where to
write and on which executor. The config's digest goes into every shard marker, so a resumed run with a
changed config reprocesses shards instead of mixing two decisions in one output."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raipipe.policy.schema import Severity


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReaderConfig(_Cfg):
    text_field: str = Field(default="text", description="JSON key holding the document text")
    id_field: str = Field(default="id", description="JSON key of a document id; else shard:line")
    lang_field: str = Field(default="lang", description="JSON key of the document language (picks the frame)")
    patterns: list[str] = Field(default=["**/*.jsonl", "**/*.txt"], description="input globs under --input")


class ScorerConfig(_Cfg):
    name: str = Field(default="minilm", description="registered scorer: minilm (default) or lexical")
    batch_size: int = Field(default=32, ge=1, description="documents scored together")
    params: dict[str, object] = Field(default_factory=dict, description="scorer-specific options")


class SeverityRule(_Cfg):
    """Score thresholds for one severity: at or above `drop_at` drop, else at or above
    `recontextualise_at` recontextualise, else keep. None turns an action off."""

    drop_at: float | None = Field(default=None, ge=0, le=1)
    recontextualise_at: float | None = Field(default=None, ge=0, le=1)


def _default_rules() -> dict[Severity, SeverityRule]:
    return {
        Severity.CRITICAL: SeverityRule(drop_at=0.8, recontextualise_at=0.5),
        Severity.HIGH: SeverityRule(drop_at=0.9, recontextualise_at=0.5),
        Severity.MEDIUM: SeverityRule(recontextualise_at=0.6),
        Severity.LOW: SeverityRule(recontextualise_at=0.8),
    }


class ActionConfig(_Cfg):
    rules: dict[Severity, SeverityRule] = Field(default_factory=_default_rules)
    harm_tags: bool = Field(default=False, description="prefix recontextualised text with <|harm:POLICY_ID|>")
    default_language: str = Field(default="en", description="frame language when a document names none")
    templates_dir: str | None = Field(default=None, description="recontextualisation frames (default: shipped)")


class OutputConfig(_Cfg):
    formats: list[Literal["jsonl", "parquet"]] = Field(default=["jsonl", "parquet"], min_length=1)
    parquet_batch: int = Field(default=512, ge=1, description="rows buffered per Parquet row group")


class ExecutorConfig(_Cfg):
    name: str = Field(default="local", description="registered executor: local or ray")
    workers: int = Field(default=1, ge=1, description="processes (local) or concurrent tasks (ray)")


class CorpusConfig(_Cfg):
    pack: str | None = Field(default=None, description="policy pack folder (default: the shipped pack)")
    reader: ReaderConfig = Field(default_factory=ReaderConfig)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    actions: ActionConfig = Field(default_factory=ActionConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @model_validator(mode="after")
    def _fill_rules(self) -> CorpusConfig:
        for sev, rule in _default_rules().items():  # a partial override keeps the other severities' defaults
            self.actions.rules.setdefault(sev, rule)
        return self

    def digest(self) -> str:
        """What decides a shard's output (the executor does not): resume only reuses matching shards."""
        blob = self.model_dump_json(exclude={"executor"})
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
