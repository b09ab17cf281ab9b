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
    shared_work_table(model, convs, args)


# a deployment-style system prompt, as a pre-deployment evaluation attaches (about 110 tokens)
SYSTEM = ("You are the customer assistant of a regional bank. Answer in the customer's language, briefly and "
          "politely. Never ask for or repeat full card numbers, PINs or passwords. Do not give investment, tax "
          "or legal advice; point to a qualified adviser instead. If a request could help someone commit fraud, "
          "harm a person or break the law, decline and say why in one sentence. If you do not know an answer, "
          "say so and suggest where the customer can find it. You are an AI system; say so when asked.")


def shared_work_table(model, convs, args) -> None:
    """The batch's work that every row shares, done once (raipipe.models.prefix_cache) versus generate's own:
    the chat template's common prefix (a system prompt makes it long) and, for k sampled answers, the prompt."""
    cases = [("greedy", convs, GenerationParams(max_new_tokens=args.max_new_tokens)),
             ("greedy, system prompt", [[Message(role="system", content=SYSTEM), *c] for c in convs],
              GenerationParams(max_new_tokens=args.max_new_tokens)),
             ("4 samples of 24 tokens", convs,
              GenerationParams(max_new_tokens=24, temperature=0.9, top_p=0.95, num_return_sequences=4))]
    table = Table(title=f"shared work done once vs per row: {len(convs)} prompts, batch {args.batch_size}")
    for col in ("case", "shared once (s)", "per row (s)", "speed-up", "same answers"):
        table.add_column(col, justify="right")
    for name, batch, params in cases:
        seconds, answers = [], []
        for shared in (True, False):
            model.share_prompt_pass = shared
            t = time.perf_counter()
            answers.append(model.generate(batch, params))
            seconds.append(time.perf_counter() - t)
        model.share_prompt_pass = True
        same = f"{sum(a == b for a, b in zip(*answers, strict=True))}/{len(batch)}"
        table.add_row(name, f"{seconds[0]:.1f}", f"{seconds[1]:.1f}", f"{seconds[1] / seconds[0]:.2f}×", same)
    Console().print(table)


if __name__ == "__main__":
    main()
