"""Confirmation: the baseline and the chosen checkpoint measured on datasets selection never saw.

Choosing the best of several checkpoints on a set and reporting that set's numbers flatters the winner:
checkpoints of one run swing by several points between saves, so the best-looking one is partly luck.
Selecting on one split (`select.datasets: [seed:dev]`) and confirming on another
(`select.confirm_datasets: [seed:test]`) gives before/after numbers that played no part in the choice.
The two must not share a prompt, or the confirmation is selection again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from raipipe.data.dedup import normalize_text
from raipipe.data.specs import resolve_dataset
from raipipe.evaluate.suite import EVAL_BATCH_SIZE, evaluate_spec
from raipipe.judges.base import load_judge
from raipipe.posttrain.lora import write_json
from raipipe.posttrain.select import CandidateMetrics, Selection, baseline_spec, evaluate_checkpoint

STAGE = "confirm"


class Confirmation(BaseModel):
    """Before/after on the confirmation datasets; `after` is None when selection kept the baseline."""

    datasets: list[str]
    selection_datasets: list[str]
    judge: str
    chosen: str
    baseline: CandidateMetrics
    after: CandidateMetrics | None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())

    def write(self, path: Path | str) -> Path:
        return write_json(Path(path), self.model_dump(mode="json"))

    def line(self) -> str:
        """Both sides before -> after, for the console."""
        after = self.after or self.baseline
        return (f"violation {self.baseline.violation.fmt()} -> {after.violation.fmt()}, over-refusal "
                f"{self.baseline.over_refusal.fmt()} -> {after.over_refusal.fmt()} (judge {self.judge})")


def _prompts(specs: Sequence[str]) -> dict[str, str]:
    """Each prompt, normalised as dedup compares them (case, punctuation, spacing), → where it was found."""
    found: dict[str, str] = {}
    for spec in specs:
        for record in resolve_dataset(spec)[1]:
            found.setdefault(normalize_text(record.prompt), f"{spec} record {record.id}")
    return found


def check_disjoint(selection_datasets: Sequence[str], confirm_datasets: Sequence[str]) -> None:
    """Raise ValueError naming a shared prompt if the confirmation sets overlap the selection sets."""
    chosen_on = _prompts(selection_datasets)
    shared = [(where, chosen_on[text]) for text, where in _prompts(confirm_datasets).items() if text in chosen_on]
    if shared:
        first, also = shared[0]
        raise ValueError(f"select.confirm_datasets {list(confirm_datasets)} share {len(shared)} prompt(s) with "
                         f"select.datasets {list(selection_datasets)} (e.g. {first} = {also}): confirmation must "
                         "use prompts the selection never saw")


def confirm_selection(selection: Selection, run_dir: Path | str, datasets: Sequence[str],
                      out: Path | str | None = None, baseline_model: str | None = None, judge=None,
                      batch_size: int = EVAL_BATCH_SIZE, stage: str = STAGE, **eval_config: Any) -> Confirmation:
    """Evaluate the baseline and the chosen checkpoint on `datasets`; write confirmation.json next to the run.
    `stage` names the store runs (confirmation, or an out-of-distribution check)."""
    selected_on = list(selection.context.get("datasets", []))
    check_disjoint(selected_on, datasets)
    judge = judge or load_judge("refusal-stack")
    lineage = selection.context.get("run_lineage", {})
    spec = baseline_spec(lineage, baseline_model)
    baseline = evaluate_spec("baseline", spec, datasets, judge, batch_size, step=0, stage=stage, **eval_config)
    after = None
    if not selection.kept_baseline:
        after = evaluate_checkpoint(Path(run_dir) / selection.chosen, datasets, judge, batch_size,
                                    step=selection.chosen_step, stage=stage, **eval_config)
    confirmation = Confirmation(datasets=list(datasets), selection_datasets=selected_on, judge=judge.judge_id,
                                chosen=selection.chosen, baseline=baseline, after=after)
    confirmation.write(Path(out) if out else Path(run_dir) / "confirmation.json")
    return confirmation
