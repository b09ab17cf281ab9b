"""Harmful text in a pretraining corpus: score every document against the policy pack, then drop,
recontextualise or keep it by severity, with a ledger that accounts for every input document per
shard; the same pipeline runs locally or on Ray and resumes after a crash. A mixer then builds a
training set from general text, policy exercises and recontextualised text at target proportions.

Outputs (under the output folder): `data/<shard>.jsonl|.parquet` (kept and recontextualised rows),
`decisions/<shard>.jsonl` (one line per input document), `quarantine/<shard>.jsonl` (unusable input
with the reason), `_done/<shard>.json` (the shard's ledger, its completion marker) and `ledger.json`.
"""

from __future__ import annotations

from pathlib import Path

from raipipe.pretrain.corpus._actions import Action, FrameSet, Recontextualiser, decide, harm_tag, load_frames
from raipipe.pretrain.corpus._config import (
    ActionConfig,
    CorpusConfig,
    ExecutorConfig,
    OutputConfig,
    ReaderConfig,
    ScorerConfig,
    SeverityRule,
)
from raipipe.pretrain.corpus._documents import Document
from raipipe.pretrain.corpus._executors import (
    EXECUTORS,
    Executor,
    LocalExecutor,
    RayExecutor,
    RunResult,
    register_executor,
    run_pipeline,
)
from raipipe.pretrain.corpus._ledger import CorpusLedger, LedgerError, ShardLedger, read_ledger
from raipipe.pretrain.corpus._mix import MixConfig, MixReport, MixSource, corpus_sources, mix
from raipipe.pretrain.corpus._pipeline import ActStep, Pipeline, PipelineStep, ScoreStep, Shard, default_steps
from raipipe.pretrain.corpus._scorers import SCORERS, Score, Scorer, get_scorer, register_scorer


def run_corpus(input_dir: Path | str, out_dir: Path | str, config: CorpusConfig | None = None,
               steps: list[PipelineStep] | None = None) -> RunResult:
    """Score and filter every shard under `input_dir` into `out_dir` on the configured executor."""
    pipeline = Pipeline(config or CorpusConfig(), Path(input_dir), Path(out_dir), steps or default_steps())
    return run_pipeline(pipeline)


__all__ = [
    "EXECUTORS", "SCORERS", "Action", "ActStep", "ActionConfig", "CorpusConfig", "CorpusLedger", "Document",
    "Executor", "ExecutorConfig", "FrameSet", "LedgerError", "LocalExecutor", "MixConfig", "MixReport",
    "MixSource", "OutputConfig", "Pipeline", "PipelineStep", "RayExecutor", "ReaderConfig", "Recontextualiser",
    "RunResult", "ScoreStep", "Score", "Scorer", "ScorerConfig", "SeverityRule", "Shard", "ShardLedger",
    "corpus_sources", "decide", "default_steps", "get_scorer", "harm_tag", "load_frames", "mix", "read_ledger",
    "register_executor", "register_scorer", "run_corpus",
]
