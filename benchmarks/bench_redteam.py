"""Red-team run throughput against the local OpenAI-compatible simulator.

A ConverterSweep (6 non-model converters per seed) runs through `run_redteam` against a server with a
fixed latency; each attack is one target query, so the ideal rate with C attacks in flight is C / latency.
The ratio (measured / ideal) shows what judging, recording (JSONL + store, one transaction per batch)
and thread scheduling cost on top of the network wait. The server runs in its own process.

    .venv/bin/python benchmarks/bench_redteam.py [--latency S] [--concurrency 1,8,32] [--seeds N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from raipipe.data.records import Label, PromptRecord, Provenance, SourceKind
from raipipe.judges import load_judge
from raipipe.models.http_backend import HTTPBackendConfig, OpenAIChatBackend
from raipipe.policy.schema import Pillar
from raipipe.redteam.run import RunOptions, run_redteam
from raipipe.testing import UpstreamSimConfig, run_upstream_sim

CHAINS = [[{"name": n}] for n in ("base64", "rot13", "hex", "leetspeak", "reverse_text", "char_split")]


def seeds(n: int) -> list[PromptRecord]:
    src = Provenance(kind=SourceKind.TEAM_WRITTEN, name="bench")
    return [PromptRecord(id=f"s{i}", prompt=f"Benchmark placeholder request number {i}.", label=Label.HARMFUL,
                         pillar=Pillar.SAFETY, source=src) for i in range(n)]


def one(url: str, concurrency: int, n_seeds: int, judge, out: Path) -> tuple[int, float, int]:
    """(attacks, wall seconds, target requests) for one fresh run."""
    target = OpenAIChatBackend(HTTPBackendConfig(base_url=url, model="sim", concurrency=max(concurrency, 1)))
    options = RunOptions(concurrency=concurrency, seed_filter="all",
                         strategy_options={"converter_sweep": {"chains": CHAINS}})
    try:
        t0 = time.perf_counter()
        summary = run_redteam(target, seeds(n_seeds), ["converter_sweep"], judge, budget=len(CHAINS),
                              out_dir=out, options=options, progress=False)
        wall = time.perf_counter() - t0
    finally:
        target.close()
    return summary.records_total, wall, summary.target_queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.05, help="server latency per request (s)")
    ap.add_argument("--concurrency", default="1,8,32", help="comma-separated attack concurrency levels")
    ap.add_argument("--seeds", type=int, default=0, help="seeds per run (default: 4 x concurrency, at least 8)")
    args = ap.parse_args()
    judge = load_judge("refusal-opener")
    table = Table(title=f"red-team run vs local simulator ({args.latency * 1000:.0f} ms latency, server process)")
    for col in ("concurrency", "attacks", "wall s", "attacks/s", "ideal/s", "ratio"):
        table.add_column(col, justify="right")
    reply = UpstreamSimConfig(latency_s=args.latency, default_reply="I'm sorry, but I can't help with that.")
    with run_upstream_sim(reply, mode="process") as (url, _), tempfile.TemporaryDirectory() as tmp:
        for c in (int(x) for x in args.concurrency.split(",")):
            n_seeds = args.seeds or max(8, 4 * c)
            attacks, wall, _ = one(url, c, n_seeds, judge, Path(tmp) / f"c{c}")
            rate, ideal = attacks / wall, c / args.latency
            table.add_row(str(c), str(attacks), f"{wall:.2f}", f"{rate:.1f}", f"{ideal:.1f}", f"{rate / ideal:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
