"""raipipe's local generation against Inspect AI's `hf` provider: same model, prompts and token budget.

Both run in this one process, one after the other, on the embedded SmolLM2 (its converted float32
safetensors directory), greedy, float32, batch 32 and the same max new tokens. Inspect runs a Task with
the prompts as Samples and `generate()` as its solver (no scorer); raipipe runs the batched, length-sorted
generation its eval runner uses. Model loading is excluded on both sides; the table prints wall time,
answers per second and the ratio. Needs the `bench` extra (inspect-ai)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from raipipe.data.specs import resolve_dataset  # noqa: E402
from raipipe.models import GenerationParams, Message, load_model  # noqa: E402
from raipipe.models.embedded import converted_dir  # noqa: E402


def run_inspect(model_dir: str, prompts: list[str], max_tokens: int, batch_size: int) -> tuple[float, int]:
    """Seconds for Inspect's eval() of a generate-only Task (the model is loaded before the clock starts)."""
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import get_model
    from inspect_ai.solver import generate

    model = get_model(f"hf/{model_dir}", device="cpu", dtype="float32", do_sample=False)
    task = Task(dataset=[Sample(input=p, id=i) for i, p in enumerate(prompts)], solver=generate())
    with tempfile.TemporaryDirectory() as log_dir:
        t = time.perf_counter()
        (log,) = eval(task, model=model, max_tokens=max_tokens, max_connections=batch_size,
                      max_samples=batch_size, display="none", log_dir=log_dir, score=False)
        seconds = time.perf_counter() - t
        if log.status != "success":  # read while the log file still exists
            raise RuntimeError(f"Inspect eval ended with status {log.status}: {log.error}")
        answered = sum(bool(s.output.completion) for s in log.samples or [])
    return seconds, answered


def run_raipipe(model_dir: str, prompts: list[str], max_tokens: int, batch_size: int) -> tuple[float, int]:
    model = load_model(f"hf:{model_dir}?dtype=float32", batch_size=batch_size)
    convs = [[Message(role="user", content=p)] for p in prompts]
    params = GenerationParams(max_new_tokens=max_tokens)
    t = time.perf_counter()
    answers = model.generate(convs, params)
    seconds = time.perf_counter() - t
    model.close()
    return seconds, sum(bool(a) for a in answers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    _, records = resolve_dataset("seed:test")
    prompts = [r.prompt for r in records[: args.prompts]]
    model_dir = str(converted_dir("smollm2"))

    rows = [("Inspect AI (hf provider)", *run_inspect(model_dir, prompts, args.max_tokens, args.batch_size)),
            ("raipipe (local backend)", *run_raipipe(model_dir, prompts, args.max_tokens, args.batch_size))]
    table = Table(title=f"SmolLM2-135M greedy float32, {len(prompts)} seed:test prompts, {args.max_tokens} new "
                        f"tokens, batch {args.batch_size}, {os.cpu_count()} cores")
    for col in ("engine", "answers", "seconds", "answers/s", "time vs raipipe"):
        table.add_column(col, justify="right")
    ours = rows[1][1]
    for name, seconds, n in rows:
        table.add_row(name, str(n), f"{seconds:.1f}", f"{n / seconds:.2f}", f"{seconds / ours:.2f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
