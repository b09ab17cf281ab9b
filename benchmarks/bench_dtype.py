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
from raipipe.evaluate.metrics import ScoredItem, is_bad, two_sided  # noqa: E402
from raipipe.evaluate.stats import mcnemar  # noqa: E402
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
    ap.add_argument("--limit", type=int, default=0, help="first N prompts of the dataset (0: all)")
    ap.add_argument("--max-new-tokens", type=int, default=80, help="the eval config's default")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--judge", default="refusal", help="the eval config's default judge")
    args = ap.parse_args()

    _, records = resolve_dataset(args.dataset)
    records = records[: args.limit] if args.limit else records
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
    for col in ("dtype", "seconds", "tokens", "tokens/s", "speed vs float32", "violation", "over-refusal"):
        table.add_column(col, justify="right")
    base = runs["float32"][1]
    summaries = {dtype: two_sided(_scored(records, verdicts)) for dtype, (*_, verdicts) in runs.items()}
    for dtype, (_, seconds, tokens, _) in runs.items():
        table.add_row(dtype, f"{seconds:.1f}", str(tokens), f"{tokens / seconds:.0f}", f"{base / seconds:.2f}×",
                      summaries[dtype].violation.fmt(), summaries[dtype].over_refusal.fmt())
    console.print(table)
    paired_table(records, runs["float32"][3], runs["bfloat16"][3], args.judge)
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


def _scored(records, verdicts) -> list[ScoredItem]:
    return [ScoredItem(record_id=r.id, label=r.label.value, pillar=r.pillar.value, language=r.language, verdict=v)
            for r, v in zip(records, verdicts, strict=True)]


def paired_table(records, v32, v16, judge: str) -> None:
    """Does bfloat16 move either rate? Exact McNemar on the prompts both dtypes got a scoreable verdict for."""
    table = Table(title=f"float32 → bfloat16, paired on the same prompts (exact McNemar), judge {judge}")
    for col in ("rate", "pairs", "bad in float32 only", "bad in bfloat16 only", "difference", "p"):
        table.add_column(col, justify="right")
    for label, name in (("harmful", "violation"), ("benign", "over-refusal")):
        outcomes = []
        for verdicts in (v32, v16):
            items = [i for i in _scored(records, verdicts) if i.label == label]
            outcomes.append({i.record_id: bad for i in items if (bad := is_bad(i)) is not None})
        test = mcnemar(*outcomes)
        diff = "n/a" if test.difference is None else f"{test.difference:+.1%}"
        table.add_row(name, str(test.n_pairs), str(test.b), str(test.c), diff, f"{test.p_value:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
