"""Post-training tables: sampled candidate responses, rankings of them (human or AI feedback),
training runs, and the steps of each post-training run. Same store, same engine as evaluation results."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from raipipe.store.base import Base, _now


class SampleBatch(Base):
    """One sampling pass: model, prompts (dataset hash), policy versions, generation params."""

    __tablename__ = "sample_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    manifest: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Candidate(Base):
    """One sampled response to one prompt. `origin` says how it was produced, e.g. 'policy-model'
    (the model under training, plain) or 'policy-model+safety-system-prompt' (context distillation)."""

    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("batch_id", "record_id", "index", name="uq_candidate"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("sample_batches.id"), index=True)
    record_id: Mapped[str] = mapped_column(String(200), index=True)
    index: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(16))  # harmful | benign (of the prompt)
    pillar: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    policy_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(100), default="policy-model")


class Ranking(Base):
    """A rater's ordering of one prompt's candidates, best first (candidate ids).
    rater_kind is 'human' or 'ai' — AI feedback is always labelled as such downstream."""

    __tablename__ = "rankings"
    __table_args__ = (UniqueConstraint("batch_id", "record_id", "rater_id", name="uq_ranking"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("sample_batches.id"), index=True)
    record_id: Mapped[str] = mapped_column(String(200), index=True)
    rater_id: Mapped[str] = mapped_column(String(100))
    rater_kind: Mapped[str] = mapped_column(String(8))  # human | ai
    order: Mapped[list] = mapped_column(JSON)  # candidate ids, best first
    ratings: Mapped[dict] = mapped_column(JSON, default=dict)  # optional per-candidate scores {id: {...}}
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TrainingRun(Base):
    """A reward-model or policy optimisation run, its config, lineage and outcome."""

    __tablename__ = "training_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # reward-model | dpo | grpo | select
    config: Mapped[dict] = mapped_column(JSON)
    lineage: Mapped[dict] = mapped_column(JSON)  # parent model, policy versions, dataset hashes
    status: Mapped[str] = mapped_column(String(16), default="running")
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    metric: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class StepRun(Base):
    """One step of one post-training run (keyed by its output directory): whether it started, finished or
    failed, under which config digest, and a JSON summary of what it produced. The one completion record
    every step writes, so a rerun skips exactly the steps done under the same config."""

    __tablename__ = "posttrain_steps"
    __table_args__ = (UniqueConstraint("run_key", "step", name="uq_posttrain_step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_key: Mapped[str] = mapped_column(String(500), index=True)
    step: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # started | done | failed
    config_digest: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
