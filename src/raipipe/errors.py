"""One error hierarchy for everything a user can get wrong, so the CLI can answer each with one paragraph.

Every error may carry where the problem is (`path`, `line`, `field`) and a `hint` saying what to change;
`str()` reads `file.jsonl:12: field 'label': must be harmful or benign — fix: ...`. The older names
(`DatasetError`, `PolicyError`, `BackendError`, ...) live here and are re-exported where they were
defined; each keeps its former built-in base (ValueError, RuntimeError, KeyError) so existing
`except ValueError` callers still catch it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar


def describe(message: str, path: Path | str | None = None, line: int | None = None, field: str | None = None,
             hint: str | None = None) -> str:
    """`path:line: field 'x': message — fix: hint`, leaving out the parts that are unknown."""
    where = f"{path}:{line}" if path is not None and line else (str(path) if path is not None else "")
    parts = [p for p in (where, f"field '{field}'" if field else "", message) if p]
    text = ": ".join(parts)
    return f"{text} — fix: {hint}" if hint else text


class RaipipeError(Exception):
    """Base of every error caused by input a user can fix; the CLI prints it without a traceback."""

    exit_code: ClassVar[int] = 2  # 2: bad input (as click does for usage errors); 1: a failure at run time
    path: str | None = None
    line: int | None = None
    field: str | None = None
    hint: str | None = None

    def __init__(self, message: str = "", *, path: Path | str | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None):
        # only set what was given: subclasses may have set `field` etc. themselves before calling this
        for name, value in (("path", None if path is None else str(path)), ("line", line), ("field", field),
                            ("hint", hint)):
            if value is not None:
                setattr(self, name, value)
        self.reason = message
        super().__init__(describe(message, path, line, field, hint))

    def __str__(self) -> str:  # KeyError subclasses would otherwise show the repr
        return str(self.args[0]) if self.args else ""


class UsageError(RaipipeError):
    """A flag, argument or combination of them that cannot work (unknown name, missing companion flag)."""


class InputFileError(RaipipeError):
    """A path the user gave does not exist, is the wrong kind, or cannot be read or written."""


class LocatedError(RaipipeError, ValueError):
    """Bad content in a file: `Error(path, line, field, message)`, or just `Error(message)`."""

    def __init__(self, path_or_message: Path | str, line: int | None = None, field_path: str | None = None,
                 message: str | None = None, *, hint: str | None = None):
        if message is None and line is None and field_path is None:
            path, message = None, str(path_or_message)
        else:
            path = path_or_message
        self.field_path = field_path
        super().__init__(message or "invalid", path=path, line=line, field=field_path, hint=hint)


class ConfigError(LocatedError):
    """A config file (YAML) that does not parse or does not fit its schema."""


class DatasetError(LocatedError):
    """A dataset row or file is invalid; the message names the file, line and field."""


class TrainingDataError(DatasetError):
    """Evaluation-only data (public benchmarks) reached a training set."""


class PolicyError(LocatedError):
    """A policy file is invalid; the message names file, line and field."""


class SpecError(UsageError, ValueError):
    """A dataset spec matches none of the accepted forms."""


class ModelSpecError(UsageError, ValueError):
    """A model spec (`KIND:ARG`) that names no backend, or an ARG the backend cannot use."""


class UnknownNameError(UsageError, KeyError, ValueError):
    """A name that no registered plug-in has; the message lists the known ones."""


class BackendError(RaipipeError, RuntimeError):
    """A backend failed after its retries; the message says which model and why."""

    exit_code: ClassVar[int] = 1


class JudgeError(RaipipeError, ValueError):
    """A judge that cannot score this input, or is configured without what it needs."""


class StoreError(RaipipeError, ValueError):
    """A store (database) that is missing, or lacks the batch, run or rows asked for."""


def require_writable(path: Path | str, flag: str, kind: str = "dir") -> Path:
    """Check, before any compute, that `path` (a directory or a file, per `kind`) can be created or written.

    Nothing is created: a run that then fails on other input leaves no empty folder behind."""
    p = Path(path).expanduser()
    if p.exists() and kind == "dir" and not p.is_dir():
        raise InputFileError(f"{flag} {p}: is a file, not a directory", hint=f"give a directory to {flag}")
    if p.exists() and kind == "file" and p.is_dir():
        raise InputFileError(f"{flag} {p}: is a directory", hint=f"give a file path to {flag}")
    start = p if kind == "dir" else p.absolute().parent
    base = next((a for a in [start, *start.absolute().parents] if a.exists()), Path("/"))
    if not base.is_dir():
        raise InputFileError(f"{flag} {p}: {base} is a file, so nothing can be created inside it",
                             hint=f"choose another {flag}")
    if not os.access(base, os.W_OK | os.X_OK) or (p.is_file() and not os.access(p, os.W_OK)):
        raise InputFileError(f"{flag} {p}: not writable ({base})", hint=f"choose a writable {flag}")
    return p
