"""Guidance documents (Markdown or plain text) split into sections and paragraph-sized passages.

Every passage keeps its provenance: file path relative to the docs folder, the heading trail it sits
under, the chunk index within that section and a digest of its text. A passage that names a policy
(its id, or its title as a phrase) is linked to that policy so its exercises carry the policy version.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from raipipe.policy.loader import PolicyPack
from raipipe.pretrain.exercises._records import content_digest

DOC_SUFFIXES = (".md", ".markdown", ".txt")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class Passage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    document: str  # path relative to the docs folder, '/'-separated
    title: str  # the document's first heading, or its file stem
    section: str  # heading trail, e.g. 'Scope > Exceptions'; '(top)' before any heading
    paragraph: int  # 0-based chunk index within the section
    text: str
    digest: str
    policy_id: str | None = None


def _paragraphs(lines: list[str]) -> list[str]:
    """Blank-line separated blocks; fenced code stays in one block even with blank lines inside."""
    blocks: list[str] = []
    cur: list[str] = []
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if cur:
                blocks.append("\n".join(cur).strip())
            cur = []
        else:
            cur.append(line)
    if cur:
        blocks.append("\n".join(cur).strip())
    return [b for b in blocks if b]


def _chunks(paragraphs: list[str], max_chars: int) -> list[str]:
    """Pack whole paragraphs into passages of at most `max_chars` (a longer paragraph stands alone)."""
    out: list[str] = []
    for para in paragraphs:
        if out and len(out[-1]) + 2 + len(para) <= max_chars:
            out[-1] = f"{out[-1]}\n\n{para}"
        else:
            out.append(para)
    return out


def sections(text: str) -> Iterator[tuple[list[str], list[str]]]:
    """(heading trail, body lines) per section; headings inside code fences are not headings."""
    trail: list[str] = []
    body: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            yield list(trail), body
            level = len(m.group(1))
            trail = trail[: level - 1] + [""] * max(0, level - 1 - len(trail)) + [m.group(2).strip()]
            body = []
        else:
            body.append(line)
    yield list(trail), body


def _link(text: str, pack: PolicyPack | None) -> str | None:
    """The first policy named in the passage, by id or by title as a whole phrase (case-insensitive)."""
    if pack is None:
        return None
    low = text.lower()
    for pid, pol in sorted(pack.policies.items()):
        if pid in low or re.search(rf"\b{re.escape(pol.title.lower())}\b", low):
            return pid
    return None


def split_document(path: Path, root: Path, pack: PolicyPack | None = None, max_chars: int = 1500) -> list[Passage]:
    """All passages of one document, in reading order."""
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(root).as_posix()
    first = next((m.group(2).strip() for ln in text.splitlines() if (m := _HEADING.match(ln))), path.stem)
    out: list[Passage] = []
    for trail, body in sections(text):
        section = " > ".join(t for t in trail if t) or "(top)"
        for i, chunk in enumerate(_chunks(_paragraphs(body), max_chars)):
            out.append(Passage(document=rel, title=first, section=section, paragraph=i, text=chunk,
                               digest=content_digest(chunk), policy_id=_link(chunk, pack)))
    return out


def load_documents(root: Path | str, pack: PolicyPack | None = None, max_chars: int = 1500) -> list[Passage]:
    """Every Markdown / text file under `root` (recursively, sorted), split into passages."""
    base = Path(root)
    if not base.is_dir():
        raise NotADirectoryError(f"guidance documents folder {base} does not exist")
    files = sorted(p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in DOC_SUFFIXES)
    return [p for f in files for p in split_document(f, base, pack, max_chars)]
