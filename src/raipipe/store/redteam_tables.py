"""Red-team tables: one row per red-team run, one per attack attempt, one per finished (strategy, seed)
unit. Unique keys on (run, record id) and (run, strategy, seed) are what make a resumed run unable to
duplicate an attempt; the full AttackRecord is kept as JSON so the store alone can replay it.

Importing this module registers the tables with `Base`; `open_redteam_store` opens a store and creates
them even when `open_store` ran before this module was imported."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from raipipe.store.base import Base, _now


class RedteamRun(Base):
    """A red-team run: target, judge, strategies and the typed config it ran under."""

    __tablename__ = "redteam_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_model_id: Mapped[str] = mapped_column(String(300))
    judge_id: Mapped[str] = mapped_column(String(300))
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AttackRow(Base):
    """One attack attempt, with the fields reports group by and the full record for replay."""

    __tablename__ = "attack_records"
    __table_args__ = (UniqueConstraint("run_id", "record_id", name="uq_attack_record"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("redteam_runs.id"), index=True)
    record_id: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(100), index=True)
    seed_id: Mapped[str] = mapped_column(String(200), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    chain: Mapped[str] = mapped_column(Text, default="")  # converter names joined with '+', for grouping
    record: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AttackUnit(Base):
    """A (strategy, seed) pair whose attack finished: a resumed run skips it without a query."""

    __tablename__ = "redteam_units"
    __table_args__ = (UniqueConstraint("run_id", "strategy", "seed_id", name="uq_redteam_unit"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("redteam_runs.id"), index=True)
    strategy: Mapped[str] = mapped_column(String(100))
    seed_id: Mapped[str] = mapped_column(String(200))
    records: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


REDTEAM_TABLES: list[Table] = [Base.metadata.tables[m.__tablename__] for m in (RedteamRun, AttackRow, AttackUnit)]


def open_redteam_store(url_or_path: str | Path) -> sessionmaker[Session]:
    """`open_store`, making sure the red-team tables exist (checkfirst: a no-op when they do)."""
    from raipipe.store.db import open_store  # lazy: raipipe.store.db imports this module

    maker = open_store(url_or_path)
    engine = maker.kw["bind"]
    Base.metadata.create_all(engine, tables=REDTEAM_TABLES, checkfirst=True)
    return maker
