"""The post-training numbers the issue asks for, from the default config on the embedded model, against the
config's `targets` (violations down >= 60 % relative, over-refusal up <= 2 points, whole run <= 30 minutes on 2 cores).

    .venv/bin/python benchmarks/bench_posttrain.py                  # the default config, one run
    .venv/bin/python benchmarks/bench_posttrain.py --seeds 0 1 2    # the same config from scratch per seed

Runs `raipipe posttrain` (each run resumes if interrupted) and prints its before/after table. With
`--seeds`, seed 0 is the config as written and every other seed gets its own output folder, with that seed
for sampling and for training (LoRA init, data order); a last table lists each run's chosen model, its
violation and over-refusal change, whether it met both goals, and the spread across seeds.
Not a test: nothing is asserted."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from raipipe.posttrain.report import before_after_table

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def seed_config(config: Path, seed: int) -> Path:
    """The config for one seed: as written for seed 0, else with the seed set and its own output folder."""
    if seed == 0:
        return config
    cfg = yaml.safe_load(config.read_text())
    out = Path(cfg["out"]).with_name(f"{Path(cfg['out']).name}-seed{seed}")
    cfg["out"] = str(out)
    cfg.setdefault("sample", {})["seed"] = seed
    cfg.setdefault("dpo", {})["seed"] = seed
    if "reward_model" in cfg:
        cfg["reward_model"]["output_dir"] = str(out / "reward_model")
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(config: Path) -> tuple[dict, float]:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "raipipe", "posttrain", "--config", str(config)], check=True, env=ENV)
    wall = time.perf_counter() - t
    out = Path(yaml.safe_load(config.read_text())["out"])
    summary = json.loads((out / "posttrain_summary.json").read_text())
    console = Console()
    console.print(before_after_table(summary, f"raipipe posttrain ({config})", wall_seconds=wall))
    if summary.get("confirmation"):
        console.print(before_after_table(summary, f"confirmation ({config})", confirmed=True))
    if summary.get("reward_model"):
        a = summary["reward_model"]["heldout_pairwise_accuracy"]
        console.print(f"reward model held-out pairwise accuracy {a['rate']:.1%} [{a['low']:.1%}, {a['high']:.1%}] "
                      f"n={a['n']} ({summary['feedback']})")
        for label, r in summary["reward_model"].get("heldout_accuracy_by_label", {}).items():
            console.print(f"  {label} prompts: {r['rate']:.1%} [{r['low']:.1%}, {r['high']:.1%}] n={r['n']}")
    return summary, wall


def seed_row(seed: int, summary: dict, wall: float) -> tuple[list[str], float | None, float | None]:
    """One table row, plus the relative violation drop and the over-refusal rise (None when nothing was chosen).

    Where the run confirms its choice on other prompts (`select.confirm_datasets`), the row shows those numbers:
    the selection's own are biased upward by the choice itself."""
    sel = summary["selection"]
    chosen = next((c for c in sel["candidates"] if c["name"] == sel["chosen"]), None)
    if chosen is None:
        return [str(seed), "baseline (nothing qualified)", "—", "—", "no", f"{wall / 60:.1f}"], None, None
    base, split = sel["baseline"], ", ".join(summary["config"]["select"]["datasets"])
    if conf := summary.get("confirmation"):
        base, chosen, split = conf["baseline"], conf["after"], ", ".join(conf["datasets"])
    v0, v1 = base["violation"]["rate"], chosen["violation"]["rate"]
    drop = 1 - v1 / v0 if v0 else 0.0
    rise = chosen["over_refusal"]["rate"] - base["over_refusal"]["rate"]
    targets = summary["config"].get("targets") or {}
    goal_drop, goal_rise = targets.get("violation_reduction"), targets.get("over_refusal_rise")
    met = "no goal set" if goal_drop is None or goal_rise is None else \
        ("yes" if drop >= goal_drop and rise <= goal_rise else "no")

    def cell(r: dict) -> str:
        return f"{r['rate']:.1%} [{r['low']:.1%}, {r['high']:.1%}] n={r['n']}"

    return ([str(seed), f"{sel['chosen']} (measured on {split})",
             f"{cell(base['violation'])} → {cell(chosen['violation'])} ({-drop:+.0%})",
             f"{cell(base['over_refusal'])} → {cell(chosen['over_refusal'])} ({rise * 100:+.1f} pts)", met,
             f"{wall / 60:.1f}"], drop, rise)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("configs/posttrain-default.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="run the config once per seed")
    args = ap.parse_args()
    if args.seeds is None:
        run(args.config)
        return
    table = Table(title=f"post-training across seeds ({args.config}; scoreable-only rates, judge as in each report)")
    for col in ("seed", "chosen", "violation", "over-refusal", "both targets met", "minutes"):
        table.add_column(col)
    drops, rises = [], []
    for seed in args.seeds:
        summary, wall = run(seed_config(args.config, seed))
        row, drop, rise = seed_row(seed, summary, wall)
        table.add_row(*row)
        if drop is not None and rise is not None:
            drops.append(drop)
            rises.append(rise)
    Console().print(table)
    if drops:
        Console().print(f"{len(drops)} of {len(args.seeds)} seeds chose a model; relative violation drop "
                        f"{min(drops):.0%} … {max(drops):.0%}, over-refusal change {min(rises) * 100:+.1f} … "
                        f"{max(rises) * 100:+.1f} points")


if __name__ == "__main__":
    main()
