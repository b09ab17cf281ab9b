"""Out of distribution: the baseline and the chosen model on prompts nobody on this team wrote.

The seed test split shares its authors, wording habits and topics with the training prompts, so a gain there
can be a gain on this team's style alone. Public benchmarks (XSTest's safe look-alikes and unsafe contrasts,
HarmBench's harmful behaviours …) are written by others. `select.ood_datasets` measures both models on each
of them, apart, after the choice: evaluation only, never trained or selected on. A benchmark that cannot be
read here (no local file, the Hub offline or unreachable) is listed as not measured, with why, and the run
goes on: these numbers add to the report, they are never a condition of the run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from raipipe.errors import DatasetError
from raipipe.posttrain.confirm import Confirmation, confirm_selection
from raipipe.posttrain.lora import write_json
from raipipe.posttrain.select import Selection

STAGE = "ood"


class OutOfDistributionResult(BaseModel):
    """One dataset: before/after (a confirmation on it), or why it was not measured."""

    dataset: str
    confirmation: Confirmation | None = None
    not_measured: str | None = None


class OutOfDistribution(BaseModel):
    limit: int | None
    results: list[OutOfDistributionResult]

    def write(self, path: Path | str) -> Path:
        return write_json(Path(path), self.model_dump(mode="json"))


def _slug(spec: str) -> str:
    return re.sub(r"[^\w.-]+", "_", spec).strip("_")[:80] or "dataset"


def measure_out_of_distribution(selection: Selection, run_dir: Path | str, datasets: Sequence[str],
                                out_dir: Path | str, limit: int | None = None, **eval_args: Any) -> OutOfDistribution:
    """Baseline and chosen model on each dataset in turn (each with its own paired numbers); a dataset that
    cannot be loaded is recorded as not measured. Writes OUT_DIR/ood.json and one confirmation file per dataset."""
    out_dir = Path(out_dir)
    results = []
    for spec in datasets:
        try:  # loading the dataset is the first thing a confirmation does
            conf = confirm_selection(selection, run_dir, [spec], out=out_dir / f"{_slug(spec)}.json", stage=STAGE,
                                     **(eval_args | {"limit": limit}))
        except DatasetError as exc:
            results.append(OutOfDistributionResult(dataset=spec, not_measured=str(exc)))
            continue
        results.append(OutOfDistributionResult(dataset=spec, confirmation=conf))
    ood = OutOfDistribution(limit=limit, results=results)
    ood.write(out_dir / "ood.json")
    return ood
