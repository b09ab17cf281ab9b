"""Policy-aware pretraining data.

Layout (one sub-package per concern, so later parts slot in beside the first):
- `exercises`: learning exercises generated from the policy pack and guidance documents (this slice).
- planned: a corpus harm scorer (drop / recontextualise / keep, with a decision ledger), executors
  (local, Ray) that run the same steps at scale, and probes that check what a pretrained model learnt.
Every artifact records the policy pack version it was built from, like the rest of raipipe.
"""

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

__all__ = [
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
