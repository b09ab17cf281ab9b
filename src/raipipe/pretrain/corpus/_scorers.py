"""Pluggable document harm scorers: each maps texts to (policy id, severity, score in [0, 1]).

`minilm` (default) compares a document's chunks with every policy's own harm descriptions and examples
(from the pack, so a new policy is scored without retraining) and turns the similarities into a
probability with a small logistic head trained on the team-written fixture (once per machine: the head
and prototype embeddings are cached on disk under a digest of what they come from). `lexical` counts policy
harm-tag words: cheap and predictable, for tests and smoke runs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from raipipe.errors import UsageError
from raipipe.judges.encoder import shared_encoder
from raipipe.models.embedded import cache_root
from raipipe.models.transformers_backend import dir_fingerprint
from raipipe.policy.loader import PolicyPack, load_pack
from raipipe.registry import Registry


@dataclass(frozen=True)
class Score:
    policy_id: str
    severity: str
    score: float


class Scorer:
    """Base class: subclasses set `name` and implement `score`; `__init__` takes the pack and params."""

    name: ClassVar[str] = ""

    def __init__(self, pack: PolicyPack, **params: Any):
        self.pack = pack

    def score(self, texts: Sequence[str]) -> list[Score]:
        raise NotImplementedError

    def _score(self, policy_id: str, value: float) -> Score:
        sev = self.pack.get(policy_id).severity.value if policy_id else ""
        return Score(policy_id=policy_id, severity=sev, score=round(float(value), 6))


SCORERS: Registry[Scorer] = Registry("corpus scorer", "raipipe.corpus_scorers")
register_scorer = SCORERS.register
_ENCODE_GROUP = 32  # chunks per encoder call, length-sorted first (see MiniLMScorer._embed_chunks)


def fixture_path() -> Path:
    return Path(str(resources.files("raipipe") / "resources" / "pretrain" / "corpus_fixture" / "labelled.jsonl"))


def read_fixture(path: Path | None = None) -> list[dict]:
    with (path or fixture_path()).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@register_scorer
class LexicalScorer(Scorer):
    """Words of each policy's harm tags (`weapons-manufacture` → weapons, manufacture), or `terms`
    given per policy id; score = distinct terms found / `saturate`, capped at 1."""

    name = "lexical"

    def __init__(self, pack: PolicyPack, terms: dict[str, list[str]] | None = None, saturate: int = 2):
        super().__init__(pack)
        if terms is None:
            terms = {pid: sorted({w for tag in p.harms for w in tag.split("-") if len(w) > 3})
                     for pid, p in pack.policies.items()}
        unknown = sorted(set(terms) - set(pack.policies))
        if unknown:
            raise UsageError(f"lexical scorer terms name policies not in {pack.ref}: {unknown}")
        self.patterns = {pid: [re.compile(rf"\b{re.escape(w.lower())}", re.I) for w in ws]
                         for pid, ws in sorted(terms.items()) if ws}
        self.saturate = max(1, saturate)
        words = sorted({w.lower() for ws in terms.values() for w in ws}, key=lambda w: (-len(w), w))
        first = f"(?=[{''.join(sorted({re.escape(w[0]) for w in words}))}])" if all(words) else ""
        self.any_term = re.compile(rf"\b{first}(?=(?:{'|'.join(map(re.escape, words))}))", re.I)

    def _found(self, text: str) -> set[re.Pattern[str]]:
        """The term patterns that match `text`, exactly as each one's own `search` would say.

        One scan finds every position where some term starts (most documents have none); only there are
        the terms tried one by one. Scanning once per term instead cost 160 passes over each document."""
        starts = [m.start() for m in self.any_term.finditer(text)]
        if not starts:
            return set()
        return {p for pats in self.patterns.values() for p in pats if any(p.match(text, s) for s in starts)}

    def score(self, texts: Sequence[str]) -> list[Score]:
        out = []
        for text in texts:
            found = self._found(text)
            hits = {pid: sum(1 for p in pats if p in found) for pid, pats in self.patterns.items()}
            best = max(hits, key=lambda k: hits[k], default="")
            n = hits.get(best, 0)
            out.append(self._score(best if n else "", min(1.0, n / self.saturate)))
        return out


def chunks(text: str, words: int, limit: int) -> list[str]:
    """Word windows of `words`; at most `limit` of them, evenly spread over a long document.

    The encoder sees 128 tokens at most (80 words of ordinary prose are ~100 tokens; a window's tokens
    past 128 are cut), so a document is scored by windows rather than truncated to its opening:
    similarities are max-pooled over windows, so a harmful passage anywhere raises the
    document's score and benign windows cannot dilute it. The `limit` bounds the cost of very long
    documents; a short harmful passage between sampled windows of such a document can be missed."""
    toks = text.split()
    parts = [" ".join(toks[i : i + words]) for i in range(0, max(1, len(toks)), words)] or [text]
    if len(parts) > limit:
        step = len(parts) / limit
        parts = [parts[int(i * step)] for i in range(limit)]
    return parts


@register_scorer
class MiniLMScorer(Scorer):
    """Chunk embeddings vs each policy's harm and allowed texts → per-policy similarity features →
    logistic head (harmful-topic vs benign). The policy is the one whose harm texts (disallowed clauses,
    violating examples, labelled fixture documents) the document comes closest to, so a new policy is
    attributed from its own clauses without retraining."""

    name = "minilm"

    def __init__(self, pack: PolicyPack, chunk_words: int = 80, max_chunks: int = 8, c: float = 4.0,
                 fixture: str | None = None):
        # local: judges.data pulls joblib, kept off CLI start-up
        from raipipe.judges.data import cached_head

        super().__init__(pack)
        self.encoder = shared_encoder()
        self.chunk_words, self.max_chunks = chunk_words, max_chunks
        self.ids = sorted(pack.policies)
        harm, safe = [], []
        for i, pid in enumerate(self.ids):
            pol = pack.policies[pid]
            harm += [(i, t) for t in [*pol.disallowed, *pol.examples.violating]]
            safe += [(i, t) for t in [*pol.allowed, *pol.examples.benign]]
        fixture_file = Path(fixture) if fixture else fixture_path()
        rows = read_fixture(fixture_file)
        # attribution prototypes: the pack's harm texts plus the fixture's labelled harmful-topic documents
        extra = [(self.ids.index(r["policy_id"]), r["text"]) for r in rows if r.get("policy_id") in pack.policies]
        self.harm_idx, self.safe_idx = np.array([i for i, _ in harm]), np.array([i for i, _ in safe])
        self.attr_idx = np.concatenate([self.harm_idx, np.array([i for i, _ in extra], dtype=int)])
        state = cached_head(self._state_path(fixture_file, c), lambda: self._fit(harm, safe, extra, rows, c))
        self.harm_emb, self.safe_emb, self.attr_emb, self.head = (
            state["harm_emb"], state["safe_emb"], state["attr_emb"], state["head"])

    def _state_path(self, fixture_file: Path, c: float) -> Path:
        """Where the fitted state lives, named by everything it is computed from: the fixture's bytes, the
        pack's policies (prototype texts), the chunking, C and the encoder's files. Fitting took most of
        a worker's start-up (every process and Ray task refitted the same head); now it happens once."""
        # local: judges.data pulls joblib, kept off CLI start-up
        from raipipe.judges.data import files_digest

        salt = json.dumps({"scorer": "corpus-minilm-v2", "pack": self.pack.digest, "chunk_words": self.chunk_words,
                           "max_chunks": self.max_chunks, "c": c, "encoder": dir_fingerprint(self.encoder.path)})
        return cache_root() / "corpus" / f"minilm-{files_digest([fixture_file], salt.encode())}.joblib"

    def _fit(self, harm: list[tuple[int, str]], safe: list[tuple[int, str]], extra: list[tuple[int, str]],
             rows: list[dict], c: float) -> dict[str, Any]:
        """Prototype embeddings and the logistic head trained on the fixture's head features."""
        from sklearn.linear_model import LogisticRegression

        y = np.array([r["label"] == "harmful" for r in rows], dtype=int)
        if len(set(y)) < 2:
            raise UsageError("the corpus scorer fixture needs both harmful and benign rows")
        self.harm_emb = self.encoder.encode([t for _, t in harm])
        self.safe_emb = self.encoder.encode([t for _, t in safe])
        head = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(
            self._head_features(*self._embed_chunks([r["text"] for r in rows])), y)
        extra_emb = self.encoder.encode([t for _, t in extra]) if extra else self.harm_emb[:0]
        return {"harm_emb": self.harm_emb, "safe_emb": self.safe_emb,
                "attr_emb": np.vstack([self.harm_emb, extra_emb]), "head": head}

    def _per_policy_max(self, sims: np.ndarray, idx: np.ndarray) -> np.ndarray:
        out = np.full((sims.shape[0], len(self.ids)), -1.0, dtype=np.float32)
        for p in range(len(self.ids)):
            out[:, p] = sims[:, idx == p].max(axis=1)
        return out

    def _embed_chunks(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Chunk embeddings of all `texts` (in order) and each document's chunk bounds.

        Chunks are sorted by length and encoded in groups of `_ENCODE_GROUP`: a batch is padded to its
        longest chunk, and a document's full windows and short last window sent together padded the
        short ones to full length (a third of the encoder's time on 120-word documents)."""
        per_doc = [chunks(t, self.chunk_words, self.max_chunks) for t in texts]
        flat = [c for cs in per_doc for c in cs]
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
        groups = [order[i : i + _ENCODE_GROUP] for i in range(0, len(order), _ENCODE_GROUP)]
        emb = np.zeros((len(flat), self.harm_emb.shape[1]), dtype=np.float32)
        for idx in groups:
            emb[idx] = self.encoder.encode([flat[i] for i in idx])
        return emb, np.cumsum([0] + [len(cs) for cs in per_doc])

    def _head_features(self, emb: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        harm = self._per_policy_max(emb @ self.harm_emb.T, self.harm_idx)
        safe = self._per_policy_max(emb @ self.safe_emb.T, self.safe_idx)
        feats = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            h, m = harm[a:b].max(0), (harm[a:b] - safe[a:b]).max(0)
            feats.append(np.concatenate([h, m, [h.max(), m.max()], emb[a:b].mean(0)]))
        return np.stack(feats)

    def features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(head features, per-policy attribution similarity), chunk similarities max-pooled per document."""
        emb, bounds = self._embed_chunks(texts)
        attr = self._per_policy_max(emb @ self.attr_emb.T, self.attr_idx)
        attrs = [attr[a:b].max(0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        return self._head_features(emb, bounds), np.stack(attrs)

    def score(self, texts: Sequence[str]) -> list[Score]:
        if not texts:
            return []
        x, harms = self.features(texts)
        probs = self.head.predict_proba(x)[:, 1]
        return [self._score(self.ids[int(np.argmax(h))], p) for h, p in zip(harms, probs, strict=True)]


@lru_cache(maxsize=4)
def shared_pack(pack_dir: str | None) -> PolicyPack:
    """One parsed pack per process and folder: the pipeline and its scorer both need it, and parsing
    it (~0.2 s) was paid twice in every worker."""
    return load_pack(pack_dir)


@lru_cache(maxsize=4)
def _cached(name: str, params_json: str, pack_dir: str | None) -> Scorer:
    return SCORERS.get(name)(shared_pack(pack_dir), **json.loads(params_json))


def get_scorer(name: str, params: dict[str, Any], pack_dir: str | None = None) -> Scorer:
    """One scorer per process and config: workers reuse the loaded encoder and trained head across shards."""
    return _cached(name, json.dumps(params, sort_keys=True), pack_dir)
