"""The steps of `raipipe posttrain`, in order. The pipeline is this list: each step declares its typed
inputs and output and records its completion in the store the same way (see `base` and `ledger`)."""

from raipipe.posttrain.steps.base import PlanError, Step, StepContext, StepNotReady, StepOutput
from raipipe.posttrain.steps.data import PairsStep, RankStep, SampleStep
from raipipe.posttrain.steps.evaluation import ConfirmStep, ExportStep, OutOfDistributionStep, ReportStep, SelectStep
from raipipe.posttrain.steps.training import RewardModelStep, TrainStep


def default_steps() -> list[Step]:
    """sample → rank → pairs → reward-model → train (with light evals) → select → confirm → ood → export →
    report."""
    return [SampleStep(), RankStep(), PairsStep(), RewardModelStep(), TrainStep(), SelectStep(), ConfirmStep(),
            OutOfDistributionStep(), ExportStep(), ReportStep()]


STEP_NAMES = tuple(step.name for step in default_steps())

__all__ = ["STEP_NAMES", "PlanError", "Step", "StepContext", "StepNotReady", "StepOutput", "default_steps"]
