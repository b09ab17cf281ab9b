"""Atomic file writes: a reader, a resumed run or a crash never sees half a file.

Every writer goes through a temporary sibling in the same directory (so the final rename stays on one
file system), flushes and fsyncs it, then `os.replace`s it over the target. On any error the temporary
file is removed and the old target, if there was one, is left exactly as it was."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_dir",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_lines",
    "atomic_write_text",
]


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; skipped where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sibling_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _temp_sibling(path: Path) -> Path:
    """A fresh empty file beside `path`, created with the umask's permissions (mkstemp would force 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _sibling_name(path)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def _temp_sibling_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _sibling_name(path)
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path` for writers that insist on a file name (joblib, safetensors);
    when the block ends without error it is fsynced and renamed over `path`."""
    path = Path(path)
    tmp = _temp_sibling(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Stream into `path` (mode "w" or "wb"): the target only changes when the block ends without error."""
    if mode not in {"w", "wb"}:
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp, _open_for_write(tmp, mode, encoding) as fh:
        yield fh


def _open_for_write(path: Path, mode: str, encoding: str) -> IO[Any]:
    if mode == "w":
        return open(path, "w", encoding=encoding, newline="\n")
    return open(path, "wb")


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_lines(path: Path | str, lines: Iterable[str]) -> Path:
    """One line per item, each ended by a newline (JSONL); the iterable may be a generator."""
    with atomic_open(path, "w") as fh:
        for line in lines:
            fh.write(line + "\n")
    return Path(path)


def atomic_write_json(path: Path | str, obj: Any, **json_kwargs: Any) -> Path:
    """`json.dumps(obj, **json_kwargs)` plus a final newline; non-ASCII stays readable unless told otherwise."""
    json_kwargs.setdefault("ensure_ascii", False)
    return atomic_write_text(path, json.dumps(obj, **json_kwargs) + "\n")


@contextmanager
def atomic_dir(out: Path | str, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to `out`; on success it replaces `out`, on error it is removed.

    With `keep_existing`, a directory that appeared at `out` meanwhile (another process won the race to
    build the same thing) is kept and ours discarded, so a reader of `out` is never pulled from under."""
    out = Path(out)
    tmp = _temp_sibling_dir(out)
    try:
        yield tmp
        if out.exists() and keep_existing:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(out.parent)
