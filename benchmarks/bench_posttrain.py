"""The post-training numbers the issue asks for, from the default config on the embedded model:
violation rate down >= 50 % relative, over-refusal up <= 5 points, whole run <= 30 minutes on 2 cores.
Runs `raipipe posttrain` (resumes if interrupted) and prints a table. Not a test: nothing is asserted."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from raipipe.posttrain.report import before_after_table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/posttrain-default.yaml")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "raipipe", "posttrain", "--config", args.config], check=True, env=env)
    wall = time.perf_counter() - t
    import yaml

    out = Path(yaml.safe_load(Path(args.config).read_text())["out"])
    s = json.loads((out / "posttrain_summary.json").read_text())
    Console().print(before_after_table(s, f"raipipe posttrain ({args.config})", wall_seconds=wall))
    if s.get("confirmation"):
        Console().print(before_after_table(s, f"confirmation ({args.config})", confirmed=True))
    if s.get("reward_model"):
        a = s["reward_model"]["heldout_pairwise_accuracy"]
        Console().print(f"reward model held-out pairwise accuracy {a['rate']:.1%} [{a['low']:.1%}, {a['high']:.1%}] "
                        f"n={a['n']} ({s['feedback']})")


if __name__ == "__main__":
    main()
