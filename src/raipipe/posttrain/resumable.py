"""Config dumps that stay stable as options are added, so finished work resumes.

A step's digest, and a sample batch's id, are hashes of the settings that decide them. A new option
whose default keeps the old behaviour must not change those hashes, or every run made before it
existed would redo hours of sampling and training on resume. Such options are listed where they are
declared (`ADDED_LATER` on the settings class) and left out of the dump while at their default."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel


class AddedLater:
    """Mixin for settings classes: the options added after runs were first made with them."""

    ADDED_LATER: ClassVar[frozenset[str]] = frozenset()


def stable_dump(settings: BaseModel, exclude: set[str] | None = None,
                also_added: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`settings` as JSON-ready values, without the options added later that are at their default
    (`also_added`: more such options, for a hash that predates the class's list)."""
    added: frozenset[str] = getattr(type(settings), "ADDED_LATER", frozenset()) | also_added
    out = settings.model_dump(mode="json", exclude=exclude)
    for name in added:
        if name in out and getattr(settings, name) == type(settings).model_fields[name].default:
            out.pop(name)
    return out
