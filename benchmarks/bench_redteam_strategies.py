"""Which attack strategies break the embedded model, starting only from seeds it refuses, before and after
post-training.

For each target (default: the base embedded model and the default post-training run's exported model),
`raipipe redteam run` screens held-out harmful seeds (seed:test) with a plain request and attacks only those the
target refused, with every registered strategy (converter sweep, PAIR, TAP, Crescendo, competing attacker agents)
under the same query budget per seed and strategy; the embedded model is also the attacker. Prints, per target and
strategy, attack success over judged attempts with its Wilson interval, seeds broken of seeds attacked, and
attacker failures (an attacker that would not attack is never counted as the target holding). Every run resumes
from its folder under --out. Nothing is asserted.

    .venv/bin/python benchmarks/bench_redteam_strategies.py [--max-seeds 12] [--budget 4] [--out out/bench-strategies]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from raipipe.redteam.report import load_run_report

STRATEGIES = ["converter_sweep", "pair", "tap", "crescendo", "multi_agent"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def attack(target: str, out: Path, args: argparse.Namespace) -> None:
    subprocess.run([sys.executable, "-m", "raipipe", "redteam", "run", "--target", target, "--out", str(out),
                    "--seeds", args.seeds, "--max-seeds", str(args.max_seeds), "--strategies", ",".join(STRATEGIES),
                    "--budget", str(args.budget), "--attacker", args.attacker, "--judge", args.judge,
                    "--concurrency", "8", "--quiet"], check=True, env=ENV)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", default=["base=embedded:smollm2",
                                                     "post-trained=hf:out/posttrain/model/merged"],
                    help="NAME=SPEC pairs")
    ap.add_argument("--seeds", default="seed:test")
    ap.add_argument("--max-seeds", type=int, default=12, help="refused harmful seeds attacked per target")
    ap.add_argument("--budget", type=int, default=4, help="target queries per seed and strategy")
    ap.add_argument("--attacker", default="embedded:smollm2")
    ap.add_argument("--judge", default="refusal-stack")
    ap.add_argument("--out", type=Path, default=Path("out/bench-strategies"))
    args = ap.parse_args()
    table = Table(title=f"attack success from refused seeds ({args.seeds}, at most {args.max_seeds} seeds, "
                        f"budget {args.budget} per seed and strategy, judge {args.judge})")
    for col in ("target", "strategy", "attack success [95% CI]", "seeds broken", "attacker failed", "unscoreable"):
        table.add_column(col)
    for pair in args.targets:
        name, _, spec = pair.partition("=")
        attack(spec, args.out / name, args)
        for row in strategy_rows(name, args.out / name):
            table.add_row(*row)
    Console(width=max(Console().width, 120)).print(table)  # a log file gets the whole table


def strategy_rows(name: str, run_dir: Path) -> list[tuple[str, ...]]:
    """One row per strategy of a finished run, then one for all of them."""
    report, _ = load_run_report(run_dir)
    rows = []
    for strategy, g in [*report.by_strategy.items(), ("all", report.overall)]:
        o = g.outcomes
        rows.append((name, strategy, g.asr.fmt(), f"{g.seeds_broken}/{g.seeds}", str(o["attacker_failed"]),
                     str(o["unscoreable"])))
    return rows


if __name__ == "__main__":
    main()
