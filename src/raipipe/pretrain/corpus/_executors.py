"""Executors run the same pipeline over shards, locally (N processes) or on Ray (N concurrent tasks):
the scale-out choice is one config field. Every executor first skips shards whose markers say they are
done, so a crashed run resumes where it stopped; the corpus ledger is rebuilt from all markers."""

from __future__ import annotations

import os
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import ClassVar

from raipipe.pretrain.corpus._ledger import CorpusLedger, ShardLedger
from raipipe.pretrain.corpus._pipeline import Pipeline, Shard
from raipipe.registry import Registry


@dataclass
class RunResult:
    ledger: CorpusLedger
    processed: list[str]
    skipped: list[str]


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _init_worker(threads: int) -> None:
    """Each worker uses its share of the cores: oversubscribed torch threads slow everyone down."""
    os.environ["RAIPIPE_TORCH_THREADS"] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Executor:
    name: ClassVar[str] = ""

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)

    def run(self, pipeline: Pipeline) -> RunResult:
        shards = pipeline.shards()
        done = {s.name: led for s in shards if (led := pipeline.finished(s)) is not None}
        todo = [s for s in shards if s.name not in done]
        new = self.map(pipeline, todo) if todo else []
        ledger = CorpusLedger.total([*done.values(), *new])
        ledger.write(pipeline.out_dir)
        return RunResult(ledger, processed=[s.name for s in todo], skipped=sorted(done))

    def map(self, pipeline: Pipeline, shards: list[Shard]) -> list[ShardLedger]:
        raise NotImplementedError


EXECUTORS: Registry[Executor] = Registry("executor", "raipipe.executors")
register_executor = EXECUTORS.register


def _run_shard(pipeline: Pipeline, shard: Shard) -> ShardLedger:
    return pipeline.run_shard(shard)


@register_executor
class LocalExecutor(Executor):
    """One worker runs in this process; more use a spawned process pool (no forked torch state)."""

    name = "local"

    def map(self, pipeline: Pipeline, shards: list[Shard]) -> list[ShardLedger]:
        if self.workers == 1 or len(shards) == 1:
            return [pipeline.run_shard(s) for s in shards]
        n = min(self.workers, len(shards))
        with ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(_threads_per_worker(n),)) as pool:
            futures = [pool.submit(_run_shard, pipeline, s) for s in shards]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in finished if f.exception()), None)
            if failed is not None:  # shards already done keep their markers; the rest wait for a resume
                pool.shutdown(cancel_futures=True)
                raise failed.exception()  # type: ignore[misc]
            return [f.result() for f in futures]


@register_executor
class RayExecutor(Executor):
    """Ray tasks, at most `workers` in flight; joins a running Ray cluster or starts a local one
    (and then shuts it down again)."""

    name = "ray"

    def map(self, pipeline: Pipeline, shards: list[Shard]) -> list[ShardLedger]:
        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
        try:
            task = ray.remote(num_cpus=1)(_ray_shard)
            threads = _threads_per_worker(self.workers)
            pending, results = list(shards), {}
            in_flight: dict = {}
            while pending or in_flight:
                while pending and len(in_flight) < self.workers:
                    s = pending.pop(0)
                    in_flight[task.remote(pipeline, s, threads)] = s.name
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    results[in_flight.pop(ref)] = ray.get(ref)
            return [results[s.name] for s in shards]
        finally:
            if started:
                ray.shutdown()


def _ray_shard(pipeline: Pipeline, shard: Shard, threads: int) -> ShardLedger:
    _init_worker(threads)
    return pipeline.run_shard(shard)


def run_pipeline(pipeline: Pipeline) -> RunResult:
    """Run on the executor the pipeline's config names."""
    cfg = pipeline.config.executor
    return EXECUTORS.get(cfg.name)(workers=cfg.workers).run(pipeline)
