"""Local generation throughput: the eval runner's batched, left-padded, length-sorted generation
versus one prompt at a time, on the same prompts with the embedded model. Prints a table."""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from raipipe.data.seed import load_seed  # noqa: E402
from raipipe.models import GenerationParams, Message, load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    records = load_seed(split="test")[: args.prompts]
    convs = [[Message(role="user", content=r.prompt)] for r in records]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    model = load_model("embedded:smollm2", batch_size=args.batch_size)
    tok = model.tokenizer
    model.generate(convs[:2], params)  # warm-up

    rows = []
    for name, fn in (
        ("eval runner (batched)", lambda: model.generate(convs, params)),
        ("sequential", lambda: [model.generate([c], params)[0] for c in convs]),
    ):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        tokens = sum(len(tok(o[0], add_special_tokens=False)["input_ids"]) for o in out)
        rows.append((name, len(convs), tokens, dt))
    table = Table(
        title=f"embedded:smollm2 generation, {len(convs)} seed prompts, max {args.max_new_tokens} new "
        f"tokens, {os.cpu_count()} cores"
    )
    for col in ("mode", "prompts", "tokens", "seconds", "prompts/s", "tokens/s", "speed-up"):
        table.add_column(col, justify="right")
    base = rows[1][3]
    for name, n, tokens, dt in rows:
        table.add_row(
            name, str(n), str(tokens), f"{dt:.1f}", f"{n / dt:.2f}", f"{tokens / dt:.0f}", f"{base / dt:.1f}×"
        )
    Console().print(table)
    sampling_table(model, convs, args)


def sampling_table(model, convs, args) -> None:
    """k sampled answers per prompt (post-training's sampling step): one pass over each prompt, its cache
    copied k times, versus generate's own num_return_sequences, which repeats the prompt k times first."""
    params = GenerationParams(max_new_tokens=24, temperature=0.9, top_p=0.95, num_return_sequences=4)
    table = Table(title=f"sampling {params.num_return_sequences} answers × {len(convs)} prompts, "
                        f"{params.max_new_tokens} new tokens, batch {args.batch_size} prompts")
    for col in ("prompt pass", "seconds", "answers/s", "speed-up"):
        table.add_column(col, justify="right")
    rows = []
    for name, shared in (("once per prompt, cache copied", True), ("once per answer (generate's own)", False)):
        model.share_prompt_pass = shared
        t = time.perf_counter()
        model.generate(convs, params)
        rows.append((name, time.perf_counter() - t))
    model.share_prompt_pass = True
    for name, dt in rows:
        n = len(convs) * params.num_return_sequences
        table.add_row(name, f"{dt:.1f}", f"{n / dt:.1f}", f"{rows[1][1] / dt:.2f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
