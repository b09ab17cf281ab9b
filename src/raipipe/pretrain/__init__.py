"""Policy-aware pretraining data.

Layout (one sub-package per concern, so later parts slot in beside the first):
- `exercises`: learning exercises generated from the policy pack and guidance documents (this slice).
- `probes`: perplexity per RAI pillar vs general text and sparse-question probes, compared across checkpoints.
- `train`: continued pretraining (LoRA or full) on a mixed corpus, probed before and after.
- `modality`: image/audio records paired with text about the same concept, turned into text exercises.
- planned: a corpus harm scorer (drop / recontextualise / keep, with a decision ledger), executors
  (local, Ray) that run the same steps at scale.
Every artifact records the policy pack version it was built from, like the rest of raipipe.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Public name -> sub-module. Imported on first use, so `import raipipe.pretrain.corpus` (in every corpus
# worker) does not pay for scipy, torch and the probes.
_LAZY = {
    **dict.fromkeys(["Exercise", "ExerciseConfig", "ExerciseKind", "ExerciseManifest", "StaleExercise",
                     "generate_exercises", "load_documents", "load_templates", "paraphrase", "read_exercises",
                     "read_manifest", "stale_exercises", "write_exercises"], "raipipe.pretrain.exercises"),
    **dict.fromkeys(["ModalityRecord", "load_fixture", "load_records", "modality_exercises"],
                    "raipipe.pretrain.modality"),
    **dict.fromkeys(["CheckpointProbes", "ProbeConfig", "compare", "run_probes"], "raipipe.pretrain.probes"),
    **dict.fromkeys(["ContinuedPretrainConfig", "DataSource", "run_continued_pretraining", "train_continued"],
                    "raipipe.pretrain.train"),
}

if TYPE_CHECKING:
    from raipipe.pretrain.exercises import (
        Exercise,
        ExerciseConfig,
        ExerciseKind,
        ExerciseManifest,
        StaleExercise,
        generate_exercises,
        load_documents,
        load_templates,
        paraphrase,
        read_exercises,
        read_manifest,
        stale_exercises,
        write_exercises,
    )
    from raipipe.pretrain.modality import ModalityRecord, load_fixture, load_records, modality_exercises
    from raipipe.pretrain.probes import CheckpointProbes, ProbeConfig, compare, run_probes
    from raipipe.pretrain.train import ContinuedPretrainConfig, DataSource, run_continued_pretraining, train_continued


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "CheckpointProbes",
    "ContinuedPretrainConfig",
    "DataSource",
    "ModalityRecord",
    "ProbeConfig",
    "compare",
    "load_fixture",
    "load_records",
    "modality_exercises",
    "run_continued_pretraining",
    "run_probes",
    "train_continued",
    "Exercise",
    "ExerciseConfig",
    "ExerciseKind",
    "ExerciseManifest",
    "StaleExercise",
    "generate_exercises",
    "load_documents",
    "load_templates",
    "paraphrase",
    "read_exercises",
    "read_manifest",
    "stale_exercises",
    "write_exercises",
]
