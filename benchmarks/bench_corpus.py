"""Corpus filtering throughput (MB of input text per second) on a generated corpus, per executor and
worker count. Each run starts from an empty output folder; worker start-up (process spawn, Ray start,
encoder load) is included, as in a real run.

    python benchmarks/bench_corpus.py                          # minilm scorer, 4 shards x 200 documents
    python benchmarks/bench_corpus.py --scorer lexical --shards 8 --docs 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from raipipe.pretrain.corpus import CorpusConfig, ExecutorConfig, ScorerConfig, run_corpus  # noqa: E402

WORDS = ("the river town library council garden recipe history museum school bicycle market weather "
         "music festival harbour bridge train lesson chapter novel science report season forest").split()


def generate(root: Path, shards: int, docs: int, words: int, seed: int = 0) -> int:
    """Neutral filler documents (no harmful text); returns the corpus size in bytes."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        with (root / f"part-{s:03d}.jsonl").open("w", encoding="utf-8") as fh:
            for i in range(docs):
                text = " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."
                fh.write(json.dumps({"id": f"{s}-{i}", "text": text}) + "\n")
    return sum(p.stat().st_size for p in root.glob("*.jsonl"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scorer", default="minilm")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--docs", type=int, default=200, help="documents per shard")
    ap.add_argument("--words", type=int, default=120, help="words per document")
    ap.add_argument("--runs", default="local:1,local:2,ray:1,ray:2", help="executor:workers list")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    try:
        size = generate(tmp / "in", args.shards, args.docs, args.words)
        table = Table(title=f"corpus: {args.shards} shards x {args.docs} docs, {size / 1e6:.2f} MB, "
                            f"scorer {args.scorer}, {os.cpu_count()} CPUs")
        for col in ("executor", "workers", "seconds", "MB/s", "docs/s"):
            table.add_column(col, justify="right")
        for spec in args.runs.split(","):
            name, workers = spec.split(":")
            cfg = CorpusConfig(scorer=ScorerConfig(name=args.scorer),
                               executor=ExecutorConfig(name=name, workers=int(workers)))
            out = tmp / f"out-{name}-{workers}"
            start = time.perf_counter()
            result = run_corpus(tmp / "in", out, cfg)
            secs = time.perf_counter() - start
            table.add_row(name, workers, f"{secs:.1f}", f"{size / 1e6 / secs:.3f}",
                          f"{result.ledger.documents_in / secs:.0f}")
        Console().print(table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
