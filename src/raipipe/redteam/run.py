"""A red-team run: every registered strategy over seed prompts, with bounded concurrency, recorded to the
run folder and the store, resumable after a crash.

Seeds default to the harmful prompts the target already refuses when asked plainly: an attack that
"breaks" a prompt the target answers anyway has found nothing. The run folder holds `run.json` (config
and counts), `seeds.jsonl` (the attacked seeds and their benign partners, for the benign look-alikes
made at promotion), `screen.jsonl` (the plain answers) and `attacks.jsonl` (every AttackRecord)."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from raipipe.data.records import Label, PromptRecord
from raipipe.errors import UsageError
from raipipe.judges.base import Judge
from raipipe.models.base import ChatModel, GenerationParams
from raipipe.policy.loader import load_pack
from raipipe.redteam.budget import AllocatorConfig
from raipipe.redteam.converters import CONVERTERS
from raipipe.redteam.plan import allocation_counts, load_or_make_plan
from raipipe.redteam.progress import RunProgress
from raipipe.redteam.records import AttackRecord, utcnow
from raipipe.redteam.run_state import LockedJudge, ReplayTarget, RunState, write_json
from raipipe.redteam.seeds import SEEDS_FILE, partners_of, read_manifest, screen_seeds, write_seeds
from raipipe.redteam.strategies.base import STRATEGIES, QueryBudget, Strategy, as_seed
from raipipe.store.redteam_tables import RedteamRun, open_redteam_store

log = logging.getLogger(__name__)

MANIFEST_FILE = "run.json"
STORE_FILE = "store.sqlite"
_BATCH_MAX = 256  # queue items per write
_BATCH_WAIT_S = 0.1  # how long a write waits for more items once one has arrived


class RunOptions(BaseModel):
    """How a run goes about it; the parts that change what is attacked must match on resume."""

    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(default=8, ge=1, description="(strategy, seed) units attacked at once")
    seed_filter: Literal["refused", "all"] = Field(
        default="refused", description="'refused': ask the target each harmful seed plainly first and attack "
        "only those it refuses; 'all': attack every harmful seed")
    max_seeds: int | None = Field(default=None, ge=1, description="attack at most this many seeds (in order)")
    strategy_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-strategy config fields, e.g. {'converter_sweep': {'samples': 2}}")
    screen_generation: GenerationParams = Field(default_factory=lambda: GenerationParams(max_new_tokens=256),
                                                description="sampling for the plain-seed screen")
    seeds_spec: str = Field(default="", description="where the seeds came from, for the manifest")
    allocate: int | None = Field(default=None, ge=1, description="attack this many (strategy, seed) units "
                                 "placed by the budget allocator, instead of every strategy on every seed")
    history: list[str] = Field(default_factory=list, description="earlier run folders whose attempts fill the "
                               "allocator's coverage matrix (with `allocate`)")
    allocator: AllocatorConfig = Field(default_factory=AllocatorConfig)


class RunConfig(BaseModel):
    """What a run attacks and how it judges: a rerun into the same folder must match it to resume."""

    model_config = ConfigDict(extra="forbid")
    strategies: list[str] = Field(min_length=1)
    budget_per_seed: int = Field(ge=1)
    target_model_id: str
    judge_id: str
    attacker_model_id: str | None = None
    seed_filter: str
    strategy_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    allocate: int | None = None
    history: list[str] = Field(default_factory=list)


class RunSummary(BaseModel):
    run_id: str
    out_dir: str
    store: str
    seeds_attacked: int
    units_total: int
    units_skipped: int = Field(description="finished in an earlier, interrupted run")
    units_failed: int
    records_new: int
    records_total: int
    target_queries: int
    replayed_queries: int = Field(description="answered from recorded exchanges on resume")
    outcomes: dict[str, int]


def _strategy_configs(strategies: Sequence[str], budget: int, options: RunOptions) -> dict[str, Any]:
    """Validate every strategy name and config before a single query is spent."""
    configs = {}
    for name in strategies:
        cls = STRATEGIES.get(name)
        fields = {"budget_per_seed": budget, **options.strategy_options.get(name, {})}
        configs[name] = cls.config_cls.model_validate(fields)
    unknown = sorted(set(options.strategy_options) - set(strategies))
    if unknown:
        raise UsageError(f"strategy options given for {unknown}, which this run does not use",
                         hint=f"use one of {list(strategies)} or drop those options")
    return configs


def _open_run(out_dir: Path, store: str | Path | None, config: RunConfig) -> tuple[str, str]:
    """The run id and store URL: new, or those of the interrupted run in `out_dir` (whose config must match)."""
    manifest = read_manifest(out_dir / MANIFEST_FILE)
    if manifest is None:
        return uuid.uuid4().hex[:16], str(store or out_dir / STORE_FILE)
    old = RunConfig.model_validate(manifest["config"])
    if old != config:
        diff = {k: (v, getattr(config, k)) for k, v in old if v != getattr(config, k)}
        raise UsageError(f"{out_dir} holds run {manifest['run_id']} with a different config: "
                         f"{ {k: f'{a!r} -> {b!r}' for k, (a, b) in diff.items()} }",
                         hint="rerun with the same settings to resume, or choose a new --out")
    return manifest["run_id"], str(store or manifest["store"])


def run_redteam(target: ChatModel, seeds: Iterable[PromptRecord | str], strategies: Sequence[str], judge: Judge,
                budget: int, out_dir: str | Path, store: str | Path | None = None, *,
                attacker: ChatModel | None = None, attacker_judge: Judge | None = None,
                options: RunOptions | None = None, progress: bool = True) -> RunSummary:
    """Attack `seeds` with each strategy (at most `budget` target queries per seed and strategy), judging
    with `judge`. Rerun with the same arguments to resume: finished attempts are neither redone nor
    written twice. `store` defaults to `out_dir/store.sqlite`."""
    options = options or RunOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configs = _strategy_configs(strategies, budget, options)
    config = RunConfig(strategies=list(strategies), budget_per_seed=budget, target_model_id=target.model_id,
                       judge_id=judge.judge_id, attacker_model_id=attacker.model_id if attacker else None,
                       seed_filter=options.seed_filter, strategy_options=options.strategy_options,
                       allocate=options.allocate, history=options.history)
    run_id, store_url = _open_run(out, store, config)
    maker = open_redteam_store(store_url)
    with maker.begin() as s:
        if s.get(RedteamRun, run_id) is None:
            s.add(RedteamRun(id=run_id, target_model_id=target.model_id, judge_id=judge.judge_id,
                             config=config.model_dump(mode="json")))
    state = RunState(out, maker, run_id).load()
    all_seeds = [as_seed(s) for s in seeds]
    attacked, screen = _select_seeds(target, all_seeds, judge, options, out)
    units, allocation = _units(attacked, strategies, options, out)
    attacked = list({seed.id: seed for _, seed in units}.values())  # the seeds the units name, in order
    write_seeds(out / SEEDS_FILE, attacked + partners_of(attacked, all_seeds))
    manifest = {"run_id": run_id, "store": store_url, "config": config.model_dump(mode="json"),
                "options": options.model_dump(mode="json"), "policy": _policy_ref(),
                "started_at": utcnow().isoformat(), "status": "running", "screen": screen, **allocation}
    write_json(out / MANIFEST_FILE, manifest)
    state.mark_run("running")
    replay_target = ReplayTarget(target, state.records)
    before = len(state.records)
    todo = [(n, s) for n, s in units if (n, s.id) not in state.done_units]
    ctx = _Context(replay_target, LockedJudge(judge), configs, attacker, attacker_judge, budget)
    ctx.check()
    failed = _execute(todo, ctx, state, options.concurrency, progress, total=len(units))
    status = "done" if not failed else "partial"
    state.mark_run(status)
    outcomes = Counter(r.outcome.value for r in state.records)
    summary = RunSummary(run_id=run_id, out_dir=str(out), store=store_url, seeds_attacked=len(attacked),
                         units_total=len(units), units_skipped=len(units) - len(todo), units_failed=failed,
                         records_new=len(state.records) - before, records_total=len(state.records),
                         target_queries=replay_target.queried, replayed_queries=replay_target.replayed,
                         outcomes=dict(sorted(outcomes.items())))
    write_json(out / MANIFEST_FILE, {**manifest, "status": status, "finished_at": utcnow().isoformat(),
                                     "summary": summary.model_dump(mode="json")})
    return summary


def _units(attacked: list[PromptRecord], strategies: Sequence[str], options: RunOptions,
           out: Path) -> tuple[list[tuple[str, PromptRecord]], dict[str, Any]]:
    """Every strategy on every seed; or, with `allocate`, the units the allocator's plan names (written to
    the run folder once, so a resume attacks the same ones), and what the manifest should say of it."""
    if not options.allocate:
        return [(name, seed) for seed in attacked for name in strategies], {}
    plan = load_or_make_plan(out, strategies, attacked, options.allocate, [Path(h) for h in options.history],
                             options.allocator)
    by_id = {s.id: s for s in attacked}
    units = [(u.strategy, by_id[u.seed_id]) for u in plan.units if u.seed_id in by_id]
    return units, {"allocation": allocation_counts(plan), "exhausted_cells": plan.exhausted}


def _policy_ref() -> dict[str, str]:
    """The policy pack in force, so a finding can say which policy version it broke."""
    try:
        pack = load_pack(None)
        return {"ref": pack.ref, "digest": pack.digest}
    except Exception as exc:  # noqa: BLE001 - a missing pack is noted, not fatal to red teaming
        return {"ref": "unknown", "error": f"{type(exc).__name__}: {exc}"}


def _select_seeds(target: ChatModel, seeds: list[PromptRecord], judge: Judge, options: RunOptions,
                  out: Path) -> tuple[list[PromptRecord], dict[str, int]]:
    harmful = [s for s in seeds if s.label == Label.HARMFUL]
    if not harmful:
        raise UsageError("no harmful seed prompts to attack", hint="give seeds with label 'harmful'")
    if options.seed_filter == "all":
        chosen = harmful
        counts = {"harmful": len(harmful), "screened": 0, "refused": len(harmful)}
    else:
        refused = screen_seeds(target, harmful, judge, out, options.screen_generation, options.concurrency)
        chosen = [s for s in harmful if s.id in refused]
        counts = {"harmful": len(harmful), "screened": len(harmful), "refused": len(chosen)}
    chosen = chosen[: options.max_seeds] if options.max_seeds else chosen
    return chosen, {**counts, "attacked": len(chosen)}


class _Context:
    """What every attack thread shares."""

    def __init__(self, target: ChatModel, judge: Judge, configs: dict[str, Any], attacker: ChatModel | None,
                 attacker_judge: Judge | None, budget: int):
        self.target, self.judge, self.configs, self.budget = target, judge, configs, budget
        self.attacker, self.attacker_judge = attacker, attacker_judge
        self.queue: queue.Queue[tuple] = queue.Queue()
        self.stop = threading.Event()

    def strategy(self, name: str) -> Strategy:
        return STRATEGIES.get(name)(self.target, self.judge, self.configs[name], attacker=self.attacker,
                                    attacker_judge=self.attacker_judge)

    def check(self) -> None:
        """Build each strategy once here, before the threads: a bad chain or a missing attacker fails now,
        and the plug-in registries finish loading in one thread (their lazy loading is not thread-safe)."""
        CONVERTERS.all()
        for name in self.configs:
            try:
                self.strategy(name)
            except ValueError as exc:
                raise UsageError(f"strategy {name}: {exc}") from exc

    def attack(self, name: str, seed: PromptRecord) -> None:
        """One unit in a worker thread: every record goes to the writer; the end (or failure) too."""
        n = 0
        try:
            for record in self.strategy(name).attack(seed, QueryBudget(self.budget)):
                if self.stop.is_set():
                    return
                self.queue.put(("record", record))
                n += 1
            self.queue.put(("unit", name, seed.id, n))
        except Exception as exc:  # a strategy bug or an exhausted budget fails its unit; rerun retries it
            log.warning("strategy %s on seed %s failed: %s: %s", name, seed.id, type(exc).__name__, exc)
            self.queue.put(("failed", name, seed.id, exc))
        except BaseException as exc:  # a crash in a worker stops the whole run, as it would in one thread
            self.queue.put(("crash", name, seed.id, exc))


def _next_batch(items_queue: queue.Queue[tuple], remaining: int) -> list[tuple]:
    """The queue items for one write: block for the first, then gather for up to `_BATCH_WAIT_S`.

    Why wait: every write is a JSONL append plus a store transaction, milliseconds of Python that hold
    the GIL the attack threads and the HTTP loop need. With many attacks in flight, records arrive a
    few at a time: 32 in flight wrote 768 attacks in ~230 transactions, a second of the writer's time.
    Waiting stops early when the batch is full, a worker crashed, or every remaining unit has ended;
    a crash loses at most the window's records, which a resume redoes."""
    items = [items_queue.get()]
    ended = items[0][0] != "record"
    deadline = time.monotonic() + _BATCH_WAIT_S
    while len(items) < _BATCH_MAX and ended < remaining and items[-1][0] != "crash":
        wait = deadline - time.monotonic()
        try:
            items.append(items_queue.get(timeout=wait) if wait > 0 else items_queue.get_nowait())
        except queue.Empty:
            break
        ended += items[-1][0] != "record"
    return items


def _execute(todo: list[tuple[str, PromptRecord]], ctx: _Context, state: RunState, concurrency: int,
             progress: bool, total: int) -> int:
    """Run the units on `concurrency` threads; this thread alone writes (in batches). Returns failed units."""
    failed = 0
    with RunProgress(total, total - len(todo), enabled=progress) as bar, \
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="redteam") as pool:
        for name, seed in todo:
            pool.submit(ctx.attack, name, seed)
        remaining = len(todo)
        try:
            while remaining:
                items = _next_batch(ctx.queue, remaining)
                records: list[AttackRecord] = [it[1] for it in items if it[0] == "record"]
                bar.records(state.add(records, [it[1:] for it in items if it[0] == "unit"]))
                for it in items:
                    if it[0] == "crash":
                        raise it[3]
                    if it[0] in ("unit", "failed"):
                        failed += it[0] == "failed"
                        remaining -= 1
                        bar.unit_done()
        except BaseException:
            ctx.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            state.mark_run("interrupted")
            raise
    return failed
