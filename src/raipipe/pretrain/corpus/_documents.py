"""Streaming readers: one document at a time from a JSONL or plain-text shard, so memory stays constant
whatever the shard size. A line that cannot become a document is not skipped: it flows on as a
quarantined document carrying its reason, so the ledger can account for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from raipipe.pretrain.corpus._config import ReaderConfig

PREVIEW = 200  # characters of a bad line kept in the quarantine file, enough to find it again


@dataclass
class Document:
    """One input document and, after scoring and acting, what was decided for it."""

    id: str
    line: int
    text: str = ""
    lang: str | None = None
    quarantine: str | None = field(default=None, metadata={"help": "reason, when the input was unusable"})
    raw: str = ""
    policy_id: str = ""
    severity: str = ""
    score: float = 0.0
    action: str = ""
    out_text: str = ""

    @property
    def ok(self) -> bool:
        return self.quarantine is None


def shard_name(path: Path, root: Path) -> str:
    """`sub/part-1.jsonl` under the input dir → `sub__part-1`: a flat, stable name for every output."""
    rel = path.relative_to(root).as_posix()
    stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
    return stem.replace("/", "__")


def list_shards(root: Path, config: ReaderConfig) -> list[Path]:
    found = {p for pattern in config.patterns for p in root.glob(pattern) if p.is_file()}
    return sorted(found)


def _bad(name: str, line: int, raw: bytes | str, reason: str) -> Document:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return Document(id=f"{name}:{line}", line=line, quarantine=reason, raw=text[:PREVIEW])


def parse_json_line(raw: bytes, name: str, line: int, config: ReaderConfig) -> Document:
    """Bytes of one JSONL line → a document, or a quarantined one naming what is wrong."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad(name, line, raw, f"not valid UTF-8 (byte {exc.start})")
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return _bad(name, line, decoded, f"bad JSON: {exc.msg} (column {exc.colno})")
    if not isinstance(obj, dict):
        return _bad(name, line, decoded, f"not a JSON object but {type(obj).__name__}")
    text = obj.get(config.text_field)
    if text is None:
        return _bad(name, line, decoded, f"missing text field {config.text_field!r}")
    if not isinstance(text, str):
        return _bad(name, line, decoded, f"text field {config.text_field!r} is {type(text).__name__}, not a string")
    if not text.strip():
        return _bad(name, line, decoded, "empty text")
    doc_id = obj.get(config.id_field)
    lang = obj.get(config.lang_field)
    return Document(id=str(doc_id) if doc_id is not None else f"{name}:{line}", line=line, text=text,
                    lang=lang if isinstance(lang, str) else None)


def read_jsonl(path: Path, name: str, config: ReaderConfig) -> Iterator[Document | int]:
    """Documents in file order; a blank line yields its line number (counted, not a document)."""
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                yield line_no
                continue
            yield parse_json_line(raw, name, line_no, config)


def read_text(path: Path, name: str) -> Iterator[Document | int]:
    """Plain text: paragraphs separated by blank lines are documents (line = where each starts)."""
    buf: list[bytes] = []
    start = 0
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            if raw.strip():
                start = start or line_no
                buf.append(raw)
                continue
            if buf:
                yield _text_doc(b"".join(buf), name, start)
                buf, start = [], 0
            yield line_no
    if buf:
        yield _text_doc(b"".join(buf), name, start)


def _text_doc(raw: bytes, name: str, line: int) -> Document:
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return _bad(name, line, raw, f"not valid UTF-8 (byte {exc.start})")
    return Document(id=f"{name}:{line}", line=line, text=text)


def read_shard(path: Path, name: str, config: ReaderConfig) -> Iterator[Document | int]:
    if path.suffix == ".txt":
        return read_text(path, name)
    return read_jsonl(path, name, config)
