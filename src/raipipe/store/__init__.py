"""Results store (SQLAlchemy): runs with manifests, a response cache, items and scores."""

from raipipe.store.db import ItemRow, ResponseRow, RunRow, ScoreRow, open_store
from raipipe.store.posttrain_tables import Candidate, Ranking, SampleBatch, StepRun, TrainingRun

__all__ = [
    "Candidate",
    "Ranking",
    "SampleBatch",
    "StepRun",
    "TrainingRun",
    "ItemRow",
    "ResponseRow",
    "RunRow",
    "ScoreRow",
    "open_store",
]
