"""Throughput of the OpenAI-compatible backend against the local simulator.

2,000 requests, fixed 50 ms server latency, concurrency 64: ideal wall time is
requests / concurrency x latency = 1.5625 s; the goal is <= 1.2x that. The server runs in its own
process by default so it does not compete with the client for the GIL.

    .venv/bin/python benchmarks/bench_http.py [--requests N] [--concurrency C] [--latency S]
                                              [--server process|thread] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import time

from rich.console import Console
from rich.table import Table

from raipipe.models.base import GenerationParams, Message
from raipipe.models.http_backend import HTTPBackendConfig, OpenAIChatBackend
from raipipe.testing import UpstreamSimConfig, run_upstream_sim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.05, help="server latency per request (s)")
    ap.add_argument("--server", choices=["process", "thread"], default="process")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (each on warm connections)")
    args = ap.parse_args()

    convs = [[Message(role="user", content=f"benchmark prompt number {i}")] for i in range(args.requests)]
    params = GenerationParams(max_new_tokens=32)
    ideal = args.requests / args.concurrency * args.latency
    table = Table(title=f"OpenAI-compatible backend vs local simulator (server in a {args.server})")
    for col in ("run", "requests", "concurrency", "latency", "wall time", "ideal time", "ratio",
                "max in-flight", "client CPU", "server CPU"):
        table.add_column(col, justify="right")

    with run_upstream_sim(UpstreamSimConfig(latency_s=args.latency), mode=args.server) as (url, handle):
        backend = OpenAIChatBackend(HTTPBackendConfig(base_url=url, model="sim", concurrency=args.concurrency))
        try:
            # Cold run first: opening `concurrency` connections is part of what a user pays once.
            for run in ["cold"] + [f"warm {i + 1}" for i in range(args.repeat)]:
                handle.reset()
                server_cpu0 = handle.stats()["process_cpu_s"]
                t0, cpu0 = time.perf_counter(), time.process_time()
                out = backend.generate(convs, params)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                stats = handle.stats()
                server_cpu = stats["process_cpu_s"] - server_cpu0
                if len(out) != args.requests or stats["requests"] != args.requests:
                    raise SystemExit(f"expected {args.requests} replies, got {len(out)} "
                                     f"(server saw {stats['requests']})")
                table.add_row(run, str(args.requests), str(args.concurrency), f"{args.latency * 1000:.0f} ms",
                              f"{wall:.3f} s", f"{ideal:.3f} s", f"{wall / ideal:.2f}x",
                              str(stats["max_in_flight"]), f"{cpu:.2f} s",
                              f"{server_cpu:.2f} s" if args.server == "process" else "(shared)")
        finally:
            backend.close()
    Console(width=140).print(table)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"goal: ratio <= 1.20x.  Load average at the end: {load} on {os.cpu_count()} CPUs "
          "(other jobs on a shared machine inflate wall time; client CPU is the steadier number).")


if __name__ == "__main__":
    main()
