"""The one typed config of a post-training run (`raipipe posttrain --config FILE`), saved with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raipipe.data.specs import check_spec_form
from raipipe.judges.base import load_judge
from raipipe.policy.loader import parse_yaml_model
from raipipe.posttrain.dpo import DPOSettings
from raipipe.posttrain.grpo import GRPOSettings
from raipipe.posttrain.pair_selection import PairStrategy, check_add_clearest, check_pair_weights
from raipipe.posttrain.resumable import AddedLater
from raipipe.posttrain.reward import RewardConfig
from raipipe.posttrain.reward_model import RewardModelConfig
from raipipe.posttrain.sample import SampleSettings
from raipipe.posttrain.select import SelectionRule


class RankSettings(BaseModel, AddedLater):
    model_config = ConfigDict(extra="forbid")
    ADDED_LATER: ClassVar[frozenset[str]] = frozenset({"written_behaviour"})
    mode: Literal["ai", "human", "import"] = Field(
        default="ai", description="ai: judges rank (AI feedback, labelled as such); human: wait for the web page; "
        "import: a labelling vendor's JSONL")
    import_file: Path | None = Field(default=None, description="JSONL of rankings for mode=import")
    judge_model: str | None = Field(default=None, description="backend spec of the rubric judge (None: refusal judge)")
    min_ranked_share: float = Field(default=0.9, ge=0, le=1, description="human mode: share of prompts ranked")
    written_behaviour: bool = Field(
        default=False, description="ai mode: a candidate whose behaviour is known from how it was made (the "
        "policy-written refusal, the team's written answer, an opened greedy answer) takes that behaviour's tier "
        "whatever the judge reads; the judge misread about one in seven Spanish team answers as a refusal")


class ProbeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_pairs: int = Field(default=12, ge=1, description="harmful/benign look-alike pairs from the dev split")
    split: str = "dev"


class SelectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    datasets: list[str] = Field(default_factory=lambda: ["seed:test"], description="the broad test set")
    rule: SelectionRule = Field(default_factory=SelectionRule)
    max_new_tokens: int = Field(default=64, ge=8)
    limit: int | None = Field(default=None, description="records per dataset (pairs kept together)")
    max_graded: int | None = Field(
        default=None, ge=1, description="grade at most this many trained checkpoints on the test set: those with "
        "the fewest in-training probe violations (each costs a full evaluation); none: every checkpoint")
    grade_final: bool = Field(
        default=True, description="the final checkpoint is one of the max_graded whatever its probe violations "
        "(unless the probe's over-refusal rules it out): the probe's few pairs cannot rank checkpoints that differ "
        "by a few answers, and the final one is where training ended")
    probe_margin: float = Field(
        default=0.15, ge=0, le=1, description="a checkpoint is not graded when its probe over-refusal, even at the "
        "low end of its interval, exceeds step 0's by more than this (clearly bad, not merely noisy)")
    lora_scales: list[float] = Field(
        default_factory=list, description="also grade copies of the graded checkpoint with the fewest violations "
        "whose LoRA update is scaled by each λ in (0, 1): a trade-off curve between the base and that checkpoint, "
        "no retraining; the two-sided rule then picks among all of them")
    judge: str = Field(default="refusal-stack", description="registered judge that scores the evaluations: "
                       "'refusal-stack' (cross-encoder + lexical signals, its head fitted on labelled answers of "
                       "the embedded model; shares no model or data with the judge that ranks the training "
                       "answers, so the grade is independent of the training signal), 'refusal-xenc', or 'rubric' "
                       "(an LLM judge, see judge_model). Post-training another model: fit refusal-stack's head on "
                       "its labelled answers")
    judge_model: str | None = Field(default=None, description="backend spec of the rubric judge, e.g. an "
                                    "OpenAI-compatible endpoint; a judge other than the ranking one keeps the "
                                    "after-numbers independent of the training signal")

    judge_options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the judge, e.g. refusal-stack's head_files (labelled "
        "answers of the model being post-trained) and heldout (more of them, to calibrate it on)")

    confirm_datasets: list[str] = Field(
        default_factory=list, description="datasets the baseline and the chosen checkpoint are measured on after "
        "selection, never used to choose (e.g. select on seed:dev, confirm on seed:test): numbers free of the "
        "optimism of reporting the best checkpoint on the set it was picked on; must share no prompt with datasets")

    ood_datasets: list[str] = Field(
        default_factory=list, description="prompts nobody here wrote, e.g. public benchmarks (xstest, harmbench, "
        "or BENCH:FILE for a local copy): the baseline and the chosen model are measured on each, apart, after the "
        "choice, and the report shows them as out-of-distribution; evaluation only, never trained or selected on. "
        "One that cannot be read (no local file, the Hub offline) is reported as not measured and the run goes on")
    ood_limit: int | None = Field(default=100, ge=2, description="records per out-of-distribution dataset "
                                  "(every pillar × label × language in proportion); none: all")

    @field_validator("ood_datasets")
    @classmethod
    def _ood_forms(cls, specs: list[str]) -> list[str]:
        for spec in specs:
            check_spec_form(spec)
        return specs

    @model_validator(mode="after")
    def _confirm_apart(self) -> SelectSettings:
        same = sorted(set(self.datasets) & set(self.confirm_datasets))
        if same:
            raise ValueError(f"confirm_datasets repeats {same} from datasets: confirmation must use prompts "
                             "the selection never saw")
        return self

    def build_judge(self):
        options = dict(self.judge_options)
        if self.judge_model:
            options["model"] = self.judge_model
        return load_judge(self.judge, **options)


class Targets(BaseModel):
    """What this user's run should achieve; the report shows each beside the measured change (none: no goal
    column). They never change what is selected: that is the selection rule's job."""

    model_config = ConfigDict(extra="forbid")
    violation_reduction: float | None = Field(default=None, gt=0, le=1, description="relative drop of the "
                                              "violation rate, e.g. 0.5 for half")
    over_refusal_rise: float | None = Field(default=None, ge=0, le=1, description="largest rise of the "
                                            "over-refusal rate, as a fraction (0.05 = 5 points)")
    wall_minutes: float | None = Field(default=None, gt=0, description="longest whole run, in minutes")


class PostTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(default="embedded:smollm2", description="the parent model to make safer")
    out: Path = Field(default=Path("out/posttrain"), description="everything the run writes goes here")
    store: str | None = Field(default=None, description="SQLite path / SQLAlchemy URL; default OUT/raipipe.db")
    algorithm: Literal["dpo", "grpo"] = "dpo"
    heldout_fraction: float = Field(default=0.2, gt=0, lt=1, description="pairs held out for the reward model")
    pair_strategy: PairStrategy = Field(
        default="best-vs-worst", description="DPO pairs per prompt: the widest-margin pair, the widest-margin pair "
        "containing the model's greedy answer (needs sample.greedy_sample), or every ranked pair")
    decisive_only: bool = Field(
        default=True, description="reward model and DPO learn only from pairs whose answers differ in behaviour "
        "(refuse vs comply); same-behaviour pairs ordered by finer scores are left out (human pairs are kept)")
    add_clearest: list[str] = Field(
        default_factory=list, description="with greedy-anchored pairs: prompt groups ('harmful', 'harmful:es') "
        "that also get their clearest pair (refusal vs the most compliant answer) where it is another pair")
    reason_pairs: bool = Field(
        default=False, description="DPO also learns, per harmful prompt, its policy-written refusal over the same "
        "refusal giving another policy family's reason (raipipe.posttrain.reason_pairs). On seed 2 it raised the right "
        "reasons from 31 % to 56 % of quoted ones on seed:test, but the full update refused most Spanish benign "
        "prompts and the base model was kept, as on seed 1 (benchmarks/README.md)")
    pair_weights: dict[str, int] = Field(
        default_factory=dict, description="DPO pair repeats by prompt label or label:language, e.g. "
        "{'benign:es': 2}; unnamed pairs count once (TRL has no per-example weights)")
    train_reward_model: bool = Field(default=True, description="train the auxiliary Bradley–Terry reward model")
    sample: SampleSettings = Field(default_factory=SampleSettings)
    rank: RankSettings = Field(default_factory=RankSettings)
    reward_model: RewardModelConfig = Field(
        default_factory=lambda: RewardModelConfig(output_dir=Path("out/posttrain/reward_model")),
        description="its output_dir is set to OUT/reward_model by the pipeline")
    reward: RewardConfig = Field(default_factory=RewardConfig)
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    select: SelectSettings = Field(default_factory=SelectSettings)
    targets: Targets = Field(default_factory=Targets, description="goals the report shows beside the results")

    @field_validator("pair_weights")
    @classmethod
    def _check_pair_weights(cls, v: dict[str, int]) -> dict[str, int]:
        check_pair_weights(v)
        return v

    @model_validator(mode="after")
    def _check_add_clearest(self) -> PostTrainConfig:
        check_add_clearest(self.add_clearest, self.pair_strategy)
        return self

    @model_validator(mode="after")
    def _team_reply_prompts_fit(self) -> PostTrainConfig:
        limit = self.sample.team_reply_max_prompt_tokens
        if (self.algorithm == "dpo" and limit is not None and self.dpo.max_answer_tokens is None
                and limit >= self.dpo.max_length):
            raise ValueError(f"sample.team_reply_max_prompt_tokens ({limit}) must be below dpo.max_length "
                             f"({self.dpo.max_length}): the pairs need room for their answers")
        return self

    @property
    def store_url(self) -> str:
        return self.store or str(self.out / "raipipe.db")

    @classmethod
    def load(cls, path: Path | str) -> PostTrainConfig:
        return parse_yaml_model(Path(path), cls)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
