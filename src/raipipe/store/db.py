"""The results store: SQLAlchemy over SQLite by default, PostgreSQL by URL.

Every write is one transaction per chunk of finished work, and every table has a uniqueness key,
so a run killed at any moment (kill -9) resumes without redoing or duplicating items."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

import raipipe.store.posttrain_tables  # noqa: F401  (registers the post-training tables with Base)
import raipipe.store.redteam_tables  # noqa: F401  (and the red-teaming tables)
from raipipe.store.base import Base, _now

__all__ = ["Base", "ItemRow", "ResponseRow", "RunRow", "ScoreRow", "_now", "open_store"]


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="eval")
    name: Mapped[str] = mapped_column(String(200), default="")
    manifest: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ResponseRow(Base):
    """Response cache: one row per (model, conversation, params, sample index)."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("cache_key", "sample", name="uq_response"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cache_key: Mapped[str] = mapped_column(String(64), index=True)
    sample: Mapped[int] = mapped_column(Integer, default=0)
    model_id: Mapped[str] = mapped_column(String(300))
    params: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ItemRow(Base):
    """One prompt of a run, with the record fields reports group by."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("run_id", "record_id", name="uq_item"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    record_id: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(16))
    pillar: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    policy_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    pair_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    prompt: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    response_key: Mapped[str] = mapped_column(String(64))


class ScoreRow(Base):
    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("run_id", "record_id", "judge_id", name="uq_score"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    record_id: Mapped[str] = mapped_column(String(200))
    judge_id: Mapped[str] = mapped_column(String(300))
    verdict: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    rationale: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # WAL: readers do not block the writer; crash-safe commits
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def open_store(url_or_path: str | Path) -> sessionmaker[Session]:
    """Open (and create) a store. A plain path means SQLite; a URL is used as is (postgresql+psycopg://…)."""
    text = str(url_or_path)
    if "://" not in text:
        Path(text).parent.mkdir(parents=True, exist_ok=True)
        text = f"sqlite:///{Path(text).resolve()}"
    engine = create_engine(text, future=True)
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    _create_tables(engine)
    return sessionmaker(engine, expire_on_commit=False)


def _create_tables(engine: Engine) -> None:
    """Create the missing tables. Two processes opening a new store together (a run and the ranking
    page, or a test polling a run it started) can both see a table missing and both CREATE it; the
    loser's "already exists" is that race, so look again rather than fail. Each lost race costs one
    table the other side has just made, so one try per table always ends it."""
    attempts = len(Base.metadata.tables) + 1
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            return
        except DBAPIError as exc:
            if "already exists" not in str(exc.orig).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))  # let the other creator finish its statement
