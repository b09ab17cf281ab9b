"""A shared memory of attack tactics that worked: the attacker-written prompt and converter chain of each
successful attempt, keyed by its goal and retrieved by similarity to a new goal.

Collaborating attacker agents read it to start from what already got through on similar requests. The
similarity is MiniLM sentence embeddings when the embedded encoder loads, else TF-IDF cosine over words
(pure Python, so tests and minimal installs need no model). Tactics persist as JSON lines and can be
appended to by several attack threads at once."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from raipipe.judges.encoder import shared_encoder
from raipipe.redteam.converters.chain import ConverterSpec
from raipipe.redteam.records import AttackOutcome, AttackRecord

log = logging.getLogger(__name__)
SimilarityKind = Literal["auto", "minilm", "tfidf"]
_WORD = re.compile(r"[^\W\d_]{3,}", re.U)
_STOP = frozenset("the and for with that this from what how are you your can could would about into there their "
                  "them they have has its any all some give tell explain describe please".split())
_APPEND_LOCK = threading.Lock()


class Similarity(Protocol):
    def scores(self, query: str, docs: Sequence[str]) -> list[float]:
        """Similarity of `query` to each doc, higher is closer."""
        ...


def words(text: str) -> list[str]:
    return [w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOP]


class TfidfSimilarity:
    """Cosine of TF-IDF word vectors, the IDF taken over the docs being searched (plus the query)."""

    def scores(self, query: str, docs: Sequence[str]) -> list[float]:
        bags = [Counter(words(t)) for t in (query, *docs)]
        df = Counter(w for bag in bags for w in bag)
        n = len(bags)
        vecs = [{w: c * (math.log((1 + n) / (1 + df[w])) + 1.0) for w, c in bag.items()} for bag in bags]
        q = vecs[0]
        qn = math.sqrt(sum(v * v for v in q.values()))
        out = []
        for d in vecs[1:]:
            dn = math.sqrt(sum(v * v for v in d.values()))
            dot = sum(v * d.get(w, 0.0) for w, v in q.items())
            out.append(dot / (qn * dn) if qn and dn else 0.0)
        return out


class EncoderSimilarity:
    """Cosine of MiniLM sentence embeddings (the embedded encoder, loaded once per process)."""

    def __init__(self) -> None:
        self.encoder = shared_encoder()

    def scores(self, query: str, docs: Sequence[str]) -> list[float]:
        if not docs:
            return []
        emb = self.encoder.encode([query, *docs])
        return [float(x) for x in np.asarray(emb[1:]) @ np.asarray(emb[0])]


def make_similarity(kind: SimilarityKind = "auto") -> Similarity:
    """`auto`: the encoder if it loads, else TF-IDF (never an error for want of a model)."""
    if kind == "tfidf":
        return TfidfSimilarity()
    try:
        return EncoderSimilarity()
    except Exception as e:
        if kind == "minilm":
            raise
        log.info("tactic memory: MiniLM encoder unavailable (%s); using TF-IDF", e)
        return TfidfSimilarity()


class Tactic(BaseModel):
    """One attempt that worked: what was asked, how, and how well it scored."""

    model_config = ConfigDict(extra="forbid")
    goal: str
    prompt: str
    chain: list[ConverterSpec] = Field(default_factory=list)
    strategy: str = ""
    score: float | None = None
    record_id: str = ""
    seed_id: str = ""


class TacticMemory:
    """Successful tactics, retrievable by goal similarity; optionally backed by a JSON-lines file."""

    def __init__(self, similarity: Similarity | None = None, path: str | Path | None = None,
                 kind: SimilarityKind = "auto"):
        self._similarity, self.kind = similarity, kind
        self.path = Path(path) if path else None
        self.tactics: list[Tactic] = []
        if self.path and self.path.is_file():
            self.tactics = list(read_tactics(self.path))

    @property
    def similarity(self) -> Similarity:
        if self._similarity is None:  # chosen on first retrieval, so an unused memory loads nothing
            self._similarity = make_similarity(self.kind)
        return self._similarity

    def __len__(self) -> int:
        return len(self.tactics)

    def add(self, tactic: Tactic) -> None:
        if any(t.record_id and t.record_id == tactic.record_id for t in self.tactics):
            return  # a resumed run re-yields records it already stored
        self.tactics.append(tactic)
        if self.path:
            with _APPEND_LOCK, open(self.path, "a", encoding="utf-8") as f:
                f.write(tactic.model_dump_json() + "\n")

    def add_record(self, record: AttackRecord) -> Tactic | None:
        """Remember a successful attempt (anything else is ignored)."""
        if record.outcome is not AttackOutcome.SUCCESS:
            return None
        tactic = Tactic(goal=record.seed_prompt, prompt=record.attack_prompt or record.seed_prompt,
                        chain=[ConverterSpec(name=s.name, params=s.params) for s in record.chain],
                        strategy=record.strategy, score=record.score, record_id=record.id, seed_id=record.seed_id)
        self.add(tactic)
        return tactic

    def retrieve(self, goal: str, k: int = 3, min_similarity: float = 0.0,
                 exclude_seed: str | None = None) -> list[tuple[Tactic, float]]:
        """The `k` tactics whose goals are closest to `goal` (ties: higher score first)."""
        pool = [t for t in self.tactics if not (exclude_seed and t.seed_id == exclude_seed)]
        if not pool:
            return []
        sims = self.similarity.scores(goal, [t.goal for t in pool])
        ranked = sorted(zip(pool, sims, strict=True), key=lambda ts: (-ts[1], -(ts[0].score or 0.0)))
        return [(t, s) for t, s in ranked[:k] if s >= min_similarity]

    def save(self, path: str | Path) -> None:
        Path(path).write_text("".join(t.model_dump_json() + "\n" for t in self.tactics), encoding="utf-8")


def read_tactics(path: str | Path) -> list[Tactic]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(Tactic.model_validate(json.loads(line)))
            except (ValueError, json.JSONDecodeError):  # a line cut short by a killed run
                log.warning("tactic memory %s: skipping an unreadable line", path)
    return out
