"""Learning exercises from policy: explanation passages, compliance Q&A, violation judgements and
counterfactual pairs, rendered from a policy pack (and guidance documents) through team-written
templates in several languages, each record traceable to the clause and version it teaches."""

from raipipe.pretrain.exercises._documents import Passage, load_documents, split_document
from raipipe.pretrain.exercises._generate import ExerciseConfig, generate_exercises
from raipipe.pretrain.exercises._paraphrase import paraphrase
from raipipe.pretrain.exercises._records import Dependency, Exercise, ExerciseKind, SourceRef
from raipipe.pretrain.exercises._stale import StaleExercise, stale_exercises
from raipipe.pretrain.exercises._templates import TemplateSet, default_templates_dir, load_templates
from raipipe.pretrain.exercises._write import (
    ExerciseManifest,
    read_exercises,
    read_manifest,
    shard_paths,
    write_exercises,
)

__all__ = [
    "Dependency",
    "Exercise",
    "ExerciseConfig",
    "ExerciseKind",
    "ExerciseManifest",
    "Passage",
    "SourceRef",
    "StaleExercise",
    "TemplateSet",
    "default_templates_dir",
    "generate_exercises",
    "load_documents",
    "load_templates",
    "paraphrase",
    "read_exercises",
    "read_manifest",
    "shard_paths",
    "split_document",
    "stale_exercises",
    "write_exercises",
]
