"""The declarative base every store table derives from, apart from `db` so the table modules and
`open_store` import it without importing each other."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import DeclarativeBase


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass
