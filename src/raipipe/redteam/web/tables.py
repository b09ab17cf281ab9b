"""Tables of the human red-team page: conversations and their turns, so a chat survives a restart of
the page. Flags are not here: each one is an AttackRecord in the red-team tables and the run folder,
like any automated finding. Importing this module registers the tables with `Base`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from raipipe.store.base import Base, _now
from raipipe.store.redteam_tables import open_redteam_store


class HumanConversation(Base):
    """One chat of a red teamer with the target of a human red-team run."""

    __tablename__ = "human_redteam_conversations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("redteam_runs.id"), index=True)
    red_teamer: Mapped[str] = mapped_column(String(100), index=True)
    target_model_id: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class HumanTurn(Base):
    """One exchange: what the red teamer sent and what the target answered. The unique key stops two
    posts racing for the same place in a conversation."""

    __tablename__ = "human_redteam_turns"
    __table_args__ = (UniqueConstraint("conversation_id", "index", name="uq_human_turn"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("human_redteam_conversations.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    reply: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


HUMAN_TABLES = [Base.metadata.tables[t.__tablename__] for t in (HumanConversation, HumanTurn)]


def open_human_store(url_or_path: str | Path) -> sessionmaker[Session]:
    """The red-team store with the conversation tables too (created when missing)."""
    maker = open_redteam_store(url_or_path)
    Base.metadata.create_all(maker.kw["bind"], tables=HUMAN_TABLES, checkfirst=True)
    return maker
