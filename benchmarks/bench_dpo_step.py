"""DPO step time on the embedded model: bfloat16 autocast (DPOSettings.precision), each pair's prompt run once
for both answers (raipipe.posttrain.shared_prompt, the default) and TRL's fused LM head scoring only the answer
tokens on CPU (raipipe.posttrain.trl_compat), versus TRL's CPU defaults. Each mode runs in its own process on
the same pairs; prints a table with the losses, which must match to float rounding in float32 (bfloat16
autocast rounds more: the last column shows by how much)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _pairs(n: int) -> list[dict]:
    from raipipe.data.seed import load_seed
    from raipipe.posttrain.refusal_templates import load_templates

    templates, _ = load_templates()
    rows = []
    for r in load_seed(split="train")[:n]:
        refusal = templates.refusal(r.id, r.language, r.pillar)
        answer = "Here is a careful, step-by-step answer that covers the main points and the usual pitfalls."
        chosen, rejected = (refusal, answer) if r.label.value == "harmful" else (answer, refusal)
        rows.append({"prompt": r.prompt, "chosen": chosen, "rejected": rejected})
    return rows


MODES = ("prompt once, answer tokens scored, bfloat16 autocast", "prompt once, answer tokens scored",
         "prompt twice, answer tokens scored", "prompt twice, every position scored (TRL on CPU)")


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-3 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))


def _one(mode: str, steps: int, out: Path) -> None:
    from raipipe.posttrain import dpo

    if mode == MODES[3]:
        dpo.cpu_compact_head = contextlib.nullcontext  # leave TRL's CPU default in place
    s = dpo.DPOSettings(share_prompt_pass=mode in MODES[:2], output_dir=out,
                        precision="bfloat16" if mode == MODES[0] else "float32", overwrite=True, max_steps=steps,
                        batch_size=4, grad_accum=2,
                        max_length=80, save_steps=10_000, learning_rate=1e-3, loss_type=["sigmoid", "sft"],
                        lora={"r": 16, "alpha": 32, "dropout": 0.0})
    t = time.perf_counter()
    result = dpo.train_dpo(_pairs(8 * steps), s)
    losses = [round(h["loss"], 4) for h in result.history if "loss" in h]
    print(json.dumps({"mode": mode, "total_s": time.perf_counter() - t, "train_s": result.train_seconds,
                      "s_per_step": result.seconds_per_step, "losses": losses}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--modes", default="0,1,2,3", help="which modes to run, by index (the last is the reference "
                    "of speed-up and losses), e.g. 0,1 for the autocast comparison alone")
    ap.add_argument("--repeat", type=int, default=1, help="run the chosen modes this many times, interleaved")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        _one(args.one, args.steps, Path(tempfile.mkdtemp(prefix="bench-dpo-")))
        return
    from rich.console import Console
    from rich.table import Table

    rows = []
    chosen = [MODES[int(i)] for i in args.modes.split(",")]
    for _ in range(args.repeat):
        for mode in chosen:
            proc = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one", mode],
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    table = Table(title=f"DPO on embedded:smollm2, LoRA r=16, {args.steps} steps of 8 pairs, {os.cpu_count()} cores")
    for col in ("mode", "s/step", "train s", "total s (with reference pass)", "speed-up", "same losses",
                "largest loss gap"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["mode"], f"{r['s_per_step']:.2f}", f"{r['train_s']:.1f}", f"{r['total_s']:.1f}",
                      f"{rows[-1]['s_per_step'] / r['s_per_step']:.2f}×", str(_same(r["losses"], rows[-1]["losses"])),
                      f"{max(abs(a - b) for a, b in zip(r['losses'], rows[-1]['losses'], strict=True)):.4f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
