"""The data steps: sample candidates from the model under training, rank them, expand rankings into pairs.

Sampling and AI ranking resume item by item through the store (a batch id is a hash of its settings,
rankings are only added where missing), so re-running an interrupted step redoes no finished item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from raipipe.errors import RaipipeError
from raipipe.judges.llm_judge import RubricJudge
from raipipe.models import load_model
from raipipe.posttrain.pairs import load_pair_dataset, pairs_from_store, save_pair_dataset, split_pairs
from raipipe.posttrain.ranking.ai_feedback import ai_rank
from raipipe.posttrain.ranking.jsonl import import_jsonl
from raipipe.posttrain.resumable import stable_dump
from raipipe.posttrain.sample import sample_candidates
from raipipe.posttrain.steps.base import Step, StepContext, StepOutput
from raipipe.store.posttrain_tables import Candidate, Ranking

console = Console(stderr=True)


class NeedsHumanRankings(RaipipeError, RuntimeError):
    """Human mode and not enough prompts ranked yet: serve the ranking page, then rerun (exit code 3)."""

    exit_code = 3


class SampleOutput(StepOutput):
    batch_id: str


class RankOutput(StepOutput):
    mode: str
    report: str


class PairsOutput(StepOutput):
    directory: Path
    n_train: int
    n_heldout: int


class SampleStep(Step):
    """K candidates per trainable prompt from the model under training (plus context-distilled ones)."""

    name = "sample"
    output = SampleOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        return {"model": ctx.config.model, "sample": stable_dump(ctx.config.sample),
                "policy": ctx.pack.digest}

    def run(self, ctx: StepContext) -> SampleOutput:
        model = load_model(ctx.config.model)
        try:
            return SampleOutput(batch_id=sample_candidates(model, ctx.config.sample, ctx.sessions, ctx.pack))
        finally:
            model.close()


class RankStep(Step):
    """AI feedback (labelled as such), an imported vendor file, or a check that humans ranked enough."""

    name = "rank"
    inputs = (SampleOutput,)
    output = RankOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        return {"rank": stable_dump(ctx.config.rank)}

    def run(self, ctx: StepContext) -> RankOutput:
        rank, batch_id = ctx.config.rank, ctx.get(SampleOutput).batch_id
        if rank.mode == "ai":
            rubric = None
            if rank.judge_model:
                rubric = RubricJudge(model=rank.judge_model)
            report = ai_rank(ctx.sessions, batch_id, rubric_judge=rubric, pack=ctx.pack, only_missing=True,
                             written_behaviour=rank.written_behaviour)
            console.print(f"AI feedback (labelled rater_kind=ai): {report}")
            return RankOutput(mode="ai", report=str(report))
        text = ""
        if rank.mode == "import":
            if not rank.import_file:
                raise ValueError("rank.mode=import needs rank.import_file")
            text = str(import_jsonl(ctx.sessions, rank.import_file))
            console.print(text)
        return RankOutput(mode=rank.mode, report=self._check_human_share(ctx, batch_id) + text)

    @staticmethod
    def _check_human_share(ctx: StepContext, batch_id: str) -> str:
        from sqlalchemy import func, select

        with ctx.sessions() as s:
            prompts = s.scalar(select(func.count(func.distinct(Candidate.record_id)))
                               .where(Candidate.batch_id == batch_id))
            ranked = s.scalar(select(func.count(func.distinct(Ranking.record_id))).where(
                Ranking.batch_id == batch_id, Ranking.rater_kind == "human")) or 0
        need = ctx.config.rank.min_ranked_share
        if not prompts or ranked / prompts < need:
            raise NeedsHumanRankings(
                f"{ranked} of {prompts} prompts of batch {batch_id} have human rankings (need {need:.0%}): run "
                f"`raipipe rank serve --store {ctx.config.store_url} --batch {batch_id}`, rank in the browser, "
                "then rerun this command.")
        return f"{ranked} of {prompts} prompts ranked by humans. "


class PairsStep(Step):
    """Rankings → chosen/rejected pairs, split into train and held out (for the reward model), saved."""

    name = "pairs"
    inputs = (SampleOutput, RankOutput)
    output = PairsOutput

    def determined_by(self, ctx: StepContext) -> dict[str, Any]:
        return {"heldout_fraction": ctx.config.heldout_fraction, "seed": ctx.config.sample.seed}

    def run(self, ctx: StepContext) -> PairsOutput:
        target = ctx.out / "pairs"
        pairset = pairs_from_store(ctx.sessions, ctx.get(SampleOutput).batch_id)
        train, heldout = split_pairs(pairset.pairs, heldout_fraction=ctx.config.heldout_fraction,
                                     seed=ctx.config.sample.seed)
        save_pair_dataset(target, train, heldout, {"pair_stats": pairset.stats.model_dump(mode="json"),
                                                   "policy_pack": ctx.pack.ref,
                                                   "policy_versions": ctx.pack.versions()})
        console.print(f"pairs: {len(train)} train, {len(heldout)} held out ({pairset.stats})")
        return PairsOutput(directory=target, n_train=len(train), n_heldout=len(heldout))


def load_pairs(ctx: StepContext) -> tuple[list, list]:
    """The (train, held-out) pairs the pairs step saved (hashes checked against their lineage)."""
    train, heldout, _ = load_pair_dataset(ctx.get(PairsOutput).directory)
    return train, heldout
