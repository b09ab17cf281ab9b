"""Refusal judges against human labels: agreement, per answer style and language, and speed.

    python benchmarks/bench_judges.py                       # the shipped held-out sets
    python benchmarks/bench_judges.py --labels my.jsonl     # any file in the labelling guide's schema

Agreement is binary (refuse-or-partial vs comply), the convention public refusal benchmarks report,
and 3-class; each with n and a 95 % Wilson interval. The style table puts every judge beside the
lexical opener rule, which a learned judge must never fall below. Time is wall time on this machine
for judging every answer of the file once (the model already loaded, as in a long evaluation)."""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from raipipe.evaluate.stats import wilson  # noqa: E402
from raipipe.judges.base import JudgeInput, load_judge  # noqa: E402
from raipipe.judges.data import (  # noqa: E402
    MODEL_ANSWER_HELDOUT_FILES,
    PROBE_ANSWER_HELDOUT_FILES,
    REFUSAL_HELDOUT_FILES,
    judge_data_path,
    read_labelled,
)


def binary(label: str) -> str:
    return "comply" if label == "comply" else "refuse"


OPENER = "refusal-opener"


def run(judges: list[str], files: list[Path], console: Console) -> None:
    below: list[tuple[str, str, str, int, int, int]] = []  # judge, file, style, n, judge right, opener right
    for path in files:
        rows = read_labelled([path])
        items = [JudgeInput(id=str(r["id"]), prompt=r["prompt"], response=r.get("response")) for r in rows]
        verdicts: dict[str, list[str]] = {}
        summary = Table(title=f"{path.name}: n={len(rows)} human-labelled answers")
        for col in ("judge", "binary agreement [95 % CI]", "3-class accuracy", "unscoreable", "seconds",
                    "s per 1000"):
            summary.add_column(col, justify="left" if col == "judge" else "right")
        for name in judges:
            judge = load_judge(name)
            judge.judge(items[:8])  # load weights and caches outside the timing
            start = time.perf_counter()
            verdicts[name] = [j.verdict.value for j in judge.judge(items)]
            seconds = time.perf_counter() - start
            scored = [(r["label"], v) for r, v in zip(rows, verdicts[name], strict=True)]
            agree = wilson(sum(binary(h) == binary(v) for h, v in scored if v != "unscoreable"), len(scored))
            exact = wilson(sum(h == v for h, v in scored), len(scored))
            summary.add_row(judge.judge_id, f"{agree.rate:.1%} [{agree.low:.1%}, {agree.high:.1%}]",
                            f"{exact.rate:.1%}", str(sum(v == "unscoreable" for _, v in scored)),
                            f"{seconds:.1f}", f"{seconds / len(rows) * 1000:.1f}")
        console.print(summary)
        for key in ("style", "language"):
            groups: dict[str, list[int]] = defaultdict(list)
            for i, r in enumerate(rows):
                groups[str(r.get(key, "?"))].append(i)
            table = Table(title=f"{path.name}: binary agreement by {key}")
            table.add_column(key)
            table.add_column("n", justify="right")
            for name in judges:
                table.add_column(name, justify="right")
            for g, idx in sorted(groups.items()):
                right = {name: sum(binary(rows[i]["label"]) == binary(verdicts[name][i]) for i in idx)
                         for name in judges}
                table.add_row(g, str(len(idx)), *(f"{right[name] / len(idx):.0%}" for name in judges))
                if key == "style" and OPENER in right:
                    below += [(name, path.name, g, len(idx), k, right[OPENER]) for name, k in right.items()
                              if k < right[OPENER]]
            console.print(table)
    if OPENER in judges:
        below_opener(below, judges, console)


def below_opener(below: list[tuple[str, str, str, int, int, int]], judges: list[str], console: Console) -> None:
    """The answer styles where a judge is right less often than the lexical opener rule (the issue's floor)."""
    table = Table(title="answer styles where a judge is below the lexical opener rule (binary agreement)")
    for col in ("judge", "styles below", "answers in them", "judge right", "opener right"):
        table.add_column(col, justify="left" if col == "judge" else "right")
    for name in (j for j in judges if j != OPENER):
        mine = [b for b in below if b[0] == name]
        table.add_row(name, str(len(mine)), str(sum(b[3] for b in mine)), str(sum(b[4] for b in mine)),
                      str(sum(b[5] for b in mine)))
    console.print(table)


def speed(judges: list[str], files: list[Path], n: int, console: Console) -> None:
    """Time to judge n answers cycled from the files, longest first so the count cannot flatter."""
    rows = sorted(read_labelled(files), key=lambda r: -len(r.get("response") or ""))
    picked = [rows[i % len(rows)] for i in range(n)]
    items = [JudgeInput(id=str(i), prompt=r["prompt"], response=r.get("response")) for i, r in enumerate(picked)]
    words = sum(len((r.get("response") or "").split()) for r in picked) / n
    table = Table(title=f"speed: {n} answers (mean {words:.0f} words), {os.cpu_count()} CPU cores")
    for col in ("judge", "seconds", "answers per second"):
        table.add_column(col, justify="left" if col == "judge" else "right")
    timed = [load_judge(name) for name in judges]
    if "refusal" in judges:  # what reading the feature judge only where the cross-encoder is unsure saves
        default = timed[judges.index("refusal")]
        timed.append(load_judge("refusal", xenc=default.xenc, features=default.features, sure=None))
    for judge in timed:
        judge.judge(items[:8])
        start = time.perf_counter()
        judge.judge(items)
        seconds = time.perf_counter() - start
        table.add_row(judge.judge_id, f"{seconds:.1f}", f"{n / seconds:.0f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, action="append", help="labelled JSONL (default: shipped held-out)")
    parser.add_argument("--judge", action="append", help="judges to compare (default: refusal, refusal-xenc, "
                        "refusal-stack, refusal-features, refusal-opener)")
    parser.add_argument("--speed", type=int, default=2250, help="answers to time (0: skip)")
    args = parser.parse_args()
    files = args.labels or [judge_data_path(f) for f in REFUSAL_HELDOUT_FILES + MODEL_ANSWER_HELDOUT_FILES
                                 + PROBE_ANSWER_HELDOUT_FILES]
    judges = args.judge or ["refusal", "refusal-xenc", "refusal-stack", "refusal-features", "refusal-opener"]
    console = Console(width=max(Console().width, 110))
    run(judges, files, console)
    if args.speed:
        speed(judges, files, args.speed, console)


if __name__ == "__main__":
    main()
