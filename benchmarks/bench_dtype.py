"""float32 versus bfloat16 for local generation: is the faster dtype safe to make the default?

Generates greedy answers to the seed test prompts with the embedded model in each dtype, judges both
with the default judge, and prints the wall time per dtype, the speed ratio and how often the verdicts
(and the answers themselves) agree. Both dtypes run in one process, one after the other, on the same
prompts and generation settings."""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from raipipe.data.specs import resolve_dataset  # noqa: E402
from raipipe.judges import JudgeInput, load_judge  # noqa: E402
from raipipe.models import GenerationParams, Message, load_model  # noqa: E402
from raipipe.models.dtype import resolve_dtype  # noqa: E402

DTYPES = ("float32", "bfloat16")


def generate(spec: str, convs, params: GenerationParams, batch_size: int) -> tuple[list[str], float, int]:
    """Answers, generation seconds (load and warm-up excluded) and new tokens for one dtype."""
    model = load_model(spec, batch_size=batch_size)
    model.generate(convs[:2], params)  # warm-up: first-call allocations and kernel selection
    t = time.perf_counter()
    answers = [o[0] for o in model.generate(convs, params)]
    seconds = time.perf_counter() - t
    tokens = sum(len(model.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    model.close()
    return answers, seconds, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="seed:test")
    ap.add_argument("--limit", type=int, default=64, help="first N prompts of the dataset")
    ap.add_argument("--max-new-tokens", type=int, default=80, help="the eval config's default")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--judge", default="refusal", help="the eval config's default judge")
    args = ap.parse_args()

    _, records = resolve_dataset(args.dataset)
    records = records[: args.limit]
    convs = [[Message(role="user", content=r.prompt)] for r in records]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    judge = load_judge(args.judge)

    runs = {}
    for dtype in DTYPES:
        answers, seconds, tokens = generate(f"embedded:smollm2?dtype={dtype}", convs, params, args.batch_size)
        verdicts = [j.verdict.value for j in judge.judge(
            [JudgeInput(id=r.id, prompt=r.prompt, response=a) for r, a in zip(records, answers, strict=True)])]
        runs[dtype] = (answers, seconds, tokens, verdicts)
    print_tables(records, runs, args)


def print_tables(records, runs, args) -> None:
    console = Console()
    table = Table(title=f"embedded:smollm2 greedy, {len(records)} prompts of {args.dataset}, max "
                        f"{args.max_new_tokens} new tokens, batch {args.batch_size}, {os.cpu_count()} cores, "
                        f"auto picks {resolve_dtype('auto', 'cpu')}")
    for col in ("dtype", "seconds", "tokens", "tokens/s", "speed vs float32", "refused (harmful)",
                "refused (benign)"):
        table.add_column(col, justify="right")
    base = runs["float32"][1]
    for dtype, (_, seconds, tokens, verdicts) in runs.items():
        table.add_row(dtype, f"{seconds:.1f}", str(tokens), f"{tokens / seconds:.0f}", f"{base / seconds:.2f}×",
                      _refusals(records, verdicts, "harmful"), _refusals(records, verdicts, "benign"))
    console.print(table)
    (a32, _, _, v32), (a16, _, _, v16) = runs["float32"], runs["bfloat16"]
    n = len(records)
    same_answer = sum(x == y for x, y in zip(a32, a16, strict=True))
    same_verdict = sum(x == y for x, y in zip(v32, v16, strict=True))
    agree = Table(title=f"float32 vs bfloat16 agreement, judge {args.judge}")
    for col in ("identical answers", "same verdict", "verdict changes (float32 → bfloat16)"):
        agree.add_column(col, justify="right")
    changes: dict[str, int] = {}
    for x, y in zip(v32, v16, strict=True):
        if x != y:
            changes[f"{x}→{y}"] = changes.get(f"{x}→{y}", 0) + 1
    agree.add_row(f"{same_answer}/{n} ({same_answer / n:.0%})", f"{same_verdict}/{n} ({same_verdict / n:.1%})",
                  ", ".join(f"{k} {v}" for k, v in sorted(changes.items())) or "none")
    console.print(agree)


def _refusals(records, verdicts, label: str) -> str:
    picked = [v for r, v in zip(records, verdicts, strict=True) if r.label.value == label]
    return f"{sum(v == 'refuse' for v in picked)}/{len(picked)}" if picked else "-"


if __name__ == "__main__":
    main()
