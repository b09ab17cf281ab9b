"""The evaluation runner: model (+ scaffolding) × datasets × judges → store → summary.

Resumable by construction: the run id is a hash of what determines the results, responses are
cached by (model, conversation, params), and each chunk of responses or scores is committed in one
transaction guarded by unique keys. Re-running the same command after a crash continues."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

import raipipe
from raipipe.data.io import DatasetError, dataset_hash
from raipipe.data.records import PromptRecord
from raipipe.data.specs import resolve_dataset
from raipipe.evaluate.config import EvalConfig
from raipipe.evaluate.metrics import ScoredItem
from raipipe.judges.base import Judge, JudgeInput, load_judge
from raipipe.models import load_model
from raipipe.models.base import ChatModel, GenerationParams, Message, conversation_key
from raipipe.policy.loader import PolicyPack, load_pack
from raipipe.store.db import ItemRow, ResponseRow, RunRow, ScoreRow, open_store

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


Cell = tuple[str, str, str]  # (pillar, label, language)
SMALL_CELL = 10  # fewer records than this in a cell and its rates mean little


def _cell(r: PromptRecord) -> Cell:
    return (r.pillar.value, r.label.value, r.language)


def _quotas(counts: Counter[Cell], limit: int) -> dict[Cell, int]:
    """Each cell's share of `limit`, proportional to its size (largest remainder, ties by cell name)."""
    total = sum(counts.values())
    exact = {c: limit * n / total for c, n in counts.items()}
    quota = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: (quota[c] - exact[c], c))[: limit - sum(quota.values())]:
        quota[c] += 1
    return quota


def stratified_limit(records: list[PromptRecord], limit: int, seed: int) -> list[PromptRecord]:
    """Keep `limit` records with each pillar x label x language cell in proportion, look-alike pairs together.

    Deterministic for a seed: groups (a pair, or a lone record) are visited in a seeded order, first
    filling each cell up to its quota, then topping up to `limit` with what is left."""
    if limit >= len(records):
        return sorted(records, key=lambda r: r.id)
    groups: dict[str, list[PromptRecord]] = defaultdict(list)
    for r in records:
        groups[r.pair_id or r.id].append(r)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    quota = _quotas(Counter(_cell(r) for r in records), limit)
    taken: Counter[Cell] = Counter()
    kept: dict[str, None] = {}  # insertion-ordered set
    for strict in (True, False):
        for k in keys:
            group = groups[k]
            if k in kept or len(group) + taken.total() > limit:
                continue
            need = Counter(_cell(r) for r in group)
            if strict and any(taken[c] + n > quota[c] for c, n in need.items()):
                continue
            kept[k] = None
            taken.update(need)
    return sorted((r for k in kept for r in groups[k]), key=lambda r: r.id)


def small_cells(records: list[PromptRecord], minimum: int = SMALL_CELL) -> list[str]:
    """Cells with fewer than `minimum` records, as 'pillar/label/language (n=3)'."""
    counts = Counter(_cell(r) for r in records)
    return [f"{'/'.join(c)} (n={n})" for c, n in sorted(counts.items()) if n < minimum]


def fit_prompts(records: list[PromptRecord], max_chars: int, on_long: str,
                dataset: str) -> tuple[list[PromptRecord], dict[str, str]]:
    """Apply the long-prompt policy before any generation: cut (reason kept on the record) or refuse."""
    long = [r for r in records if len(r.prompt) > max_chars]
    if not long:
        return records, {}
    if on_long == "reject":
        ids = ", ".join(f"{r.id} ({len(r.prompt)} chars)" for r in long[:5]) + (", ..." if len(long) > 5 else "")
        raise DatasetError(dataset, None, "prompt", f"{len(long)} prompt(s) longer than max_prompt_chars="
                           f"{max_chars}: {ids}", hint="shorten them, raise max_prompt_chars, or set "
                           "on_long_prompt: truncate")
    reasons = {r.id: f"prompt truncated from {len(r.prompt)} to {max_chars} characters (max_prompt_chars)"
               for r in long}
    fitted = [r.model_copy(update={"prompt": r.prompt[:max_chars],
                                   "metadata": {**r.metadata, "truncated": reasons[r.id]}})
              if r.id in reasons else r for r in records]
    return fitted, reasons


def response_key(model_id: str, conv: Sequence[Message], params: GenerationParams) -> str:
    blob = f"{model_id}\n{conversation_key(conv)}\n{params.key()}"
    return hashlib.sha256(blob.encode()).hexdigest()


class EvalRun:
    """One evaluation run. Build it, then `execute()`; `items()` reads back what the primary judge said."""

    def __init__(self, config: EvalConfig, model: ChatModel | None = None, judges: Sequence[Judge] | None = None):
        self.config = config
        self.pack: PolicyPack = load_pack(config.policy_pack)
        self.datasets: dict[str, list[PromptRecord]] = {}
        self.truncated: dict[str, str] = {}
        for spec in config.datasets:
            self._add_dataset(spec)
        self._check_ids()
        self._model = model
        self._judges = list(judges) if judges is not None else None
        self.sessions = open_store(config.store)

    def _add_dataset(self, spec: str) -> None:
        name, records = resolve_dataset(spec)
        if not records:
            raise DatasetError(spec, None, None, "has no records", hint="give a dataset with at least one prompt")
        if name in self.datasets:
            raise DatasetError(spec, None, None, f"dataset {name!r} is given twice", hint="list each dataset once")
        if self.config.limit:
            records = stratified_limit(records, self.config.limit, self.config.seed)
            small = small_cells(records)
            if small:
                shown = ", ".join(small[:6]) + (f" (+{len(small) - 6} more)" if len(small) > 6 else "")
                console.print(f"[yellow]warning:[/] {name}: {len(small)} pillar/label/language cell(s) have fewer "
                              f"than {SMALL_CELL} records after --limit, so their rates are unreliable: {shown}",
                              highlight=False, soft_wrap=True)
        records, reasons = fit_prompts(records, self.config.max_prompt_chars, self.config.on_long_prompt, name)
        self.truncated.update(reasons)
        self.datasets[name] = records

    def _check_ids(self) -> None:
        seen: dict[str, str] = {}
        for name, records in self.datasets.items():
            for r in records:
                if r.id in seen:
                    raise DatasetError(name, None, "id", f"record id {r.id!r} also appears in {seen[r.id]}",
                                       hint="give each record a unique id across the datasets of one run")
                seen[r.id] = name

    @property
    def model(self) -> ChatModel:
        if self._model is None:
            self._model = load_model(self.config.model)
        return self._model

    @property
    def judges(self) -> list[Judge]:
        if self._judges is None:
            self._judges = [
                load_judge(j, model=self.config.judge_model) if j == "rubric" and self.config.judge_model
                else load_judge(j)
                for j in self.config.judges
            ]
        return self._judges

    def manifest(self) -> dict:
        return {
            "model": self.model.model_id,
            "model_spec": self.config.model,
            "scaffolding": self.config.scaffolding.model_dump(),
            "params": self.config.params.model_dump(),
            "datasets": {n: {"hash": dataset_hash(r), "n": len(r)} for n, r in self.datasets.items()},
            "judges": [j.judge_id for j in self.judges],
            "policy_pack": self.pack.ref,
            "policy_digest": self.pack.digest,
            "policy_versions": self.pack.versions(),
            "seed": self.config.seed,
            "limit": self.config.limit,
        } | ({"truncated_prompts": dict(sorted(self.truncated.items()))} if self.truncated else {})

    @property
    def run_id(self) -> str:
        if not hasattr(self, "_run_id"):
            blob = json.dumps(self.manifest(), sort_keys=True)
            self._run_id = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self._run_id

    def conversation(self, record: PromptRecord) -> list[Message]:
        system = self.config.scaffolding.system_prompt
        head = [Message(role="system", content=system)] if system else []
        return head + [Message(role="user", content=record.prompt)]

    def execute(self) -> str:
        manifest = self.manifest()
        with self.sessions.begin() as s:
            if s.get(RunRow, self.run_id) is None:
                s.add(RunRow(id=self.run_id, name=self.config.name, manifest={
                    **manifest, "raipipe_version": raipipe.__version__,
                    "started_at": datetime.now(UTC).isoformat()}))
        self._generate()
        for judge in self.judges:
            self._score(judge)
        with self.sessions.begin() as s:
            run = s.get_one(RunRow, self.run_id)
            run.status, run.finished_at = "finished", datetime.now(UTC)
        return self.run_id

    def _generate(self) -> None:
        with self.sessions() as s:
            done = set(s.scalars(select(ItemRow.record_id).where(ItemRow.run_id == self.run_id)))
        pending = [(n, r) for n, recs in self.datasets.items() for r in recs if r.id not in done]
        total = sum(len(v) for v in self.datasets.values())
        params = self.config.params
        with _progress() as bar:
            task = bar.add_task(f"generate [{self.config.model}]", total=total, completed=total - len(pending))
            for start in range(0, len(pending), self.config.chunk_size):
                chunk = pending[start : start + self.config.chunk_size]
                convs = [self.conversation(r) for _, r in chunk]
                keys = [response_key(self.model.model_id, c, params) for c in convs]
                with self.sessions() as s:
                    cached = dict(s.execute(select(ResponseRow.cache_key, ResponseRow.text).where(
                        ResponseRow.cache_key.in_(keys), ResponseRow.sample == 0)).all())
                miss = [i for i, k in enumerate(keys) if k not in cached]
                fresh = self.model.generate([convs[i] for i in miss], params) if miss else []
                with self.sessions.begin() as s:
                    for i, texts in zip(miss, fresh, strict=True):
                        for sample, text in enumerate(texts):
                            s.add(ResponseRow(cache_key=keys[i], sample=sample, model_id=self.model.model_id,
                                              params=params.key(), text=text))
                        cached[keys[i]] = texts[0]
                    for (name, r), key in zip(chunk, keys, strict=True):
                        s.add(ItemRow(run_id=self.run_id, record_id=r.id, dataset=name, label=r.label.value,
                                      pillar=r.pillar.value, language=r.language, policy_id=r.policy_id,
                                      pair_id=r.pair_id, prompt=r.prompt, response=cached[key], response_key=key))
                bar.advance(task, len(chunk))

    def _score(self, judge: Judge) -> None:
        with self.sessions() as s:
            done = set(s.scalars(select(ScoreRow.record_id).where(
                ScoreRow.run_id == self.run_id, ScoreRow.judge_id == judge.judge_id)))
            items = [i for i in s.scalars(select(ItemRow).where(ItemRow.run_id == self.run_id).order_by(ItemRow.id))
                     if i.record_id not in done]
        total = sum(len(v) for v in self.datasets.values())
        with _progress() as bar:
            task = bar.add_task(f"judge [{judge.judge_id}]", total=total, completed=total - len(items))
            for start in range(0, len(items), self.config.chunk_size):
                chunk = items[start : start + self.config.chunk_size]
                inputs = [JudgeInput(id=i.record_id, prompt=i.prompt, response=i.response,
                                     policy=self.pack.policies.get(i.policy_id or "")) for i in chunk]
                judgements = judge.judge(inputs)
                with self.sessions.begin() as s:
                    for it, jd in zip(chunk, judgements, strict=True):
                        s.add(ScoreRow(run_id=self.run_id, record_id=it.record_id, judge_id=judge.judge_id,
                                       verdict=jd.verdict.value, score=jd.score, rationale=jd.rationale))
                bar.advance(task, len(chunk))

    def items(self, judge_id: str | None = None) -> list[ScoredItem]:
        return load_scored_items(self.sessions, self.run_id, judge_id or self.judges[0].judge_id)


def load_scored_items(sessions, run_id: str, judge_id: str) -> list[ScoredItem]:
    with sessions() as s:
        rows = s.execute(
            select(ItemRow, ScoreRow).join(ScoreRow, (ScoreRow.run_id == ItemRow.run_id)
                                           & (ScoreRow.record_id == ItemRow.record_id))
            .where(ItemRow.run_id == run_id, ScoreRow.judge_id == judge_id)
        ).all()
    return [ScoredItem(record_id=i.record_id, label=i.label, pillar=i.pillar, language=i.language,
                       policy_id=i.policy_id, verdict=sc.verdict, score=sc.score) for i, sc in rows]
