"""raipipe's local generation against Inspect AI's `hf` provider: same model, prompts and token budget.

Both run in this one process, one after the other, on the embedded SmolLM2 (its converted safetensors
directory), greedy, batch 32 and the same max new tokens. Inspect runs a Task with the prompts as Samples
and `generate()` as its solver (no scorer), in float32 (what it loads for this model by default: the
directory's config says float32) and in bfloat16; raipipe runs the batched, length-sorted, shared-prefix
generation its eval runner uses, in float32 and in the dtype `auto` picks on this CPU. Model loading is
excluded on both sides; the table prints wall time, answers per second and the speed-up over Inspect at its
default and at the same dtype. Needs the `bench` extra (inspect-ai)."""

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
from raipipe.models.dtype import resolve_dtype  # noqa: E402
from raipipe.models.embedded import converted_dir  # noqa: E402


def run_inspect(model_dir: str, prompts: list[str], max_tokens: int, batch_size: int,
                dtype: str) -> tuple[float, int]:
    """Seconds for Inspect's eval() of a generate-only Task (the model is loaded before the clock starts)."""
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import get_model
    from inspect_ai.solver import generate

    model = get_model(f"hf/{model_dir}", device="cpu", dtype=dtype, do_sample=False)
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


def run_raipipe(model_dir: str, prompts: list[str], max_tokens: int, batch_size: int,
                dtype: str) -> tuple[float, int]:
    model = load_model(f"hf:{model_dir}?dtype={dtype}", batch_size=batch_size)
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

    auto = resolve_dtype("auto", "cpu")
    runs = [("Inspect AI (hf provider)", "float32", run_inspect), ("Inspect AI (hf provider)", "bfloat16", run_inspect),
            ("raipipe (local backend)", "float32", run_raipipe), ("raipipe (local backend, auto)", auto, run_raipipe)]
    seconds: dict[tuple[str, str], tuple[float, int]] = {}
    for engine, dtype, fn in runs:
        seconds[engine, dtype] = fn(model_dir, prompts, args.max_tokens, args.batch_size, dtype)
    table = Table(title=f"SmolLM2-135M greedy, {len(prompts)} seed:test prompts, {args.max_tokens} new tokens, "
                        f"batch {args.batch_size}, {os.cpu_count()} cores; auto picks {auto} here")
    for col in ("engine", "dtype", "answers", "seconds", "answers/s", "speed-up vs Inspect float32",
                "vs Inspect same dtype"):
        table.add_column(col, justify="right")
    inspect_default = seconds["Inspect AI (hf provider)", "float32"][0]
    for (engine, dtype), (s, n) in seconds.items():
        same = seconds["Inspect AI (hf provider)", dtype][0]
        table.add_row(engine, dtype, str(n), f"{s:.1f}", f"{n / s:.2f}", f"{inspect_default / s:.2f}×",
                      f"{same / s:.2f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
