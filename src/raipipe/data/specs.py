"""Resolve a dataset spec string (as typed on the command line or in a config) to records.

Forms:
  seed                   the whole shipped seed set
  seed:SPLIT[:LANG]      one split (train, dev, test, or `all`), optionally one language
  generated:SPLIT[:LANG] prompts built by the policy-driven generator from the shipped blocks (seed 0),
                         split by topic; same forms as seed
  redteam:DIR[@vN][:SPLIT] a version of the red-team findings dataset promoted into DIR (default: the latest)
  PATH.jsonl             a file in our PromptRecord format
  BENCH:SOURCE           a registered public benchmark from a local file or a HF dataset id
  BENCH                  a registered benchmark from its conventional HF dataset id
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from raipipe.data.benchmarks import benchmark_names, get_loader, load_benchmark
from raipipe.data.generator import generate
from raipipe.data.generator_blocks import load_blocks
from raipipe.data.io import load_jsonl
from raipipe.data.records import PromptRecord, Split
from raipipe.data.seed import load_seed
from raipipe.errors import SpecError
from raipipe.policy.loader import load_pack


def valid_forms() -> str:
    return (
        "valid dataset specs: 'seed', 'seed:test', 'seed:dev', 'seed:train', 'seed:all:es' "
        "(split, then optional language), the same forms with 'generated' (e.g. 'generated:train'), "
        "'redteam:DIR[@vN][:SPLIT]' (promoted red-team findings), "
        "a path to a .jsonl file, or BENCH:SOURCE with BENCH one "
        f"of {', '.join(benchmark_names())} and SOURCE a local csv/jsonl/json/parquet file or a "
        "Hugging Face dataset id (e.g. 'xstest:data/xstest_prompts.csv', 'harmbench:walledai/HarmBench')"
    )


def _split_and_language(spec: str) -> tuple[str | None, str | None]:
    parts = spec.split(":")
    if len(parts) > 3:
        raise SpecError(f"{spec!r}: too many ':' parts; {valid_forms()}")
    split = parts[1].strip().lower() if len(parts) > 1 else "all"
    lang = parts[2].strip().lower() if len(parts) > 2 else None
    if split not in {s.value for s in Split} | {"all", ""}:
        raise SpecError(f"{spec!r}: unknown split {split!r}; use train, dev, test or all")
    return (None if split in ("all", "") else split), lang


def _seed(spec: str) -> tuple[str, list[PromptRecord]]:
    split, lang = _split_and_language(spec)
    records = load_seed(split=split, languages=lang)
    if not records:
        raise SpecError(f"{spec!r} selects no seed records")
    return spec, records


@lru_cache(maxsize=1)
def _generated_all() -> tuple[PromptRecord, ...]:
    """The generator's default output (shipped pack and blocks, seed 0): deterministic, so it is rebuilt
    rather than shipped, and checked against the seed set's held-out rows like the CLI does."""
    pack = load_pack(None)
    records, _ = generate(pack, load_blocks(None, pack=pack), seed_records=load_seed())
    return tuple(records)


def _generated(spec: str) -> tuple[str, list[PromptRecord]]:
    split, lang = _split_and_language(spec)
    records = [r for r in _generated_all() if (split is None or (r.split is not None and r.split.value == split))
               and (lang is None or r.language == lang)]
    if not records:
        raise SpecError(f"{spec!r} selects no generated records")
    return spec, records


def check_spec_form(spec: str) -> None:
    """Raise SpecError when a spec has none of the accepted forms, without loading it: a typo fails before any
    compute, while whether a benchmark's file or Hub copy can be read is known only on loading."""
    head = spec.strip().partition(":")[0]
    if head in ("seed", "generated", "redteam") or Path(spec).expanduser().is_file():
        return
    try:
        get_loader(head)
    except KeyError:
        raise SpecError(f"{spec!r} is no dataset spec; {valid_forms()}") from None


def resolve_dataset(spec: str) -> tuple[str, list[PromptRecord]]:
    """Return (display name, records) for a dataset spec; raise SpecError naming the valid forms."""
    spec = spec.strip()
    if not spec:
        raise SpecError(f"empty dataset spec; {valid_forms()}")
    if spec == "seed" or spec.startswith("seed:"):
        return _seed(spec)
    if spec == "generated" or spec.startswith("generated:"):
        return _generated(spec)
    if spec.startswith("redteam:"):
        from raipipe.redteam.findings import resolve_redteam  # lazy: red-team findings need the store

        return resolve_redteam(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".jsonl":
            raise SpecError(
                f"{spec!r} is a {path.suffix or 'suffix-less'} file; only .jsonl in PromptRecord format is "
                f"read directly. For a benchmark file use BENCH:{spec}; {valid_forms()}"
            )
        return path.stem, load_jsonl(path).records
    bench, sep, source = spec.partition(":")
    try:
        loader = get_loader(bench)
    except KeyError:
        hint = "no such file; " if spec.endswith(".jsonl") else ""
        raise SpecError(f"{spec!r}: {hint}{valid_forms()}") from None
    result = load_benchmark(loader.name, source if sep else None)
    return loader.name, result.records
