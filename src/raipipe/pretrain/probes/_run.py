"""Run every pretraining probe on one model: perplexity per group and the sparse-question probes."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from raipipe.judges.base import load_judge
from raipipe.models import load_model
from raipipe.models.base import ChatModel
from raipipe.pretrain.probes._judge_error import (
    JUDGE_HELDOUT,
    NO_CALIBRATION,
    PROBE_ANSWERS,
    ProbeCalibration,
    probe_calibration,
)
from raipipe.pretrain.probes._perplexity import GroupPerplexity, PerplexitySettings, perplexity_by_group
from raipipe.pretrain.probes._preference import (
    PillarPreference,
    PreferenceSettings,
    QuestionMargin,
    load_openings,
    question_margins,
    score_margins,
)
from raipipe.pretrain.probes._sparse import PillarProbe, ProbeAnswer, SparseSettings, run_sparse_probes
from raipipe.pretrain.probes._texts import load_fewshot, load_probe_texts, load_questions, material_digest


class ProbeConfig(BaseModel):
    """What the probes measure and how; saved with every result."""

    model_config = ConfigDict(extra="forbid")
    probe_dir: str | None = Field(default=None, description="folder of probe YAML files (default: the shipped set)")
    perplexity: PerplexitySettings = Field(default_factory=PerplexitySettings)
    sparse: SparseSettings = Field(default_factory=SparseSettings)
    run_sparse: bool = Field(default=True, description="generate and judge the sparse questions (slower)")
    preference: PreferenceSettings = Field(default_factory=PreferenceSettings)
    run_preference: bool = Field(default=True, description="score refusal vs answer openings on the sparse "
                                 "questions by likelihood (local models only; no generation, no judge)")
    batch_size: int = Field(default=16, ge=1, description="generation batch size of the model under test")
    languages: list[str] | None = Field(default=None, description="keep only these languages (default: all)")
    calibration: str = Field(default=PROBE_ANSWERS, description="labelled set that measures the judge's error for "
                             f"the judge-corrected rows: {PROBE_ANSWERS} (people-labelled answers to this probe), "
                             f"{JUDGE_HELDOUT} (the judge's own held-out set), a JSONL path, or {NO_CALIBRATION}")

    @field_validator("calibration")
    @classmethod
    def _known_calibration(cls, value: str) -> str:
        if value not in (PROBE_ANSWERS, JUDGE_HELDOUT, NO_CALIBRATION) and not Path(value).is_file():
            raise ValueError(f"{value!r} is neither a labelled JSONL file nor one of {PROBE_ANSWERS}, "
                             f"{JUDGE_HELDOUT}, {NO_CALIBRATION}")
        return value

    def digest(self) -> str:
        """What decides the results (not the batch size, nor the report's calibration): a cached result is
        reused only for the same."""
        return hashlib.sha256(self.model_dump_json(exclude={"batch_size", "calibration"}).encode()).hexdigest()[:16]

    def report_calibration(self, judge=None) -> ProbeCalibration | None:
        """The calibration the report's judge-corrected rows use (None without sparse probes or when off)."""
        if not self.run_sparse or self.calibration == NO_CALIBRATION:
            return None
        return probe_calibration(judge or load_judge(self.sparse.judge), self.calibration)


class CheckpointProbes(BaseModel):
    """Every probe result for one checkpoint."""

    label: str
    spec: str
    model_id: str
    dtype: str | None = None
    material: str = Field(description="digest of the probe files used")
    settings: str = Field(default="", description="digest of the probe config used (ProbeConfig.digest)")
    perplexity: dict[str, GroupPerplexity] = Field(default_factory=dict, description="empty for API models")
    probes: dict[str, PillarProbe] = Field(default_factory=dict)
    judge_id: str = Field(default="", description="the judge that scored the answers (empty: not recorded)")
    answers: list[ProbeAnswer] = Field(default_factory=list)
    preference: dict[str, PillarPreference] = Field(default_factory=dict, description="empty for API models")
    margins: list[QuestionMargin] = Field(default_factory=list)
    seconds: float = 0.0
    created_at: str = ""


def probe_model(model: ChatModel, label: str, spec: str, config: ProbeConfig | None = None,
                judge=None) -> CheckpointProbes:
    """Probe an already loaded model. Perplexity and the preference probe need a local transformers model
    (`.model`, `.tokenizer`); API backends get the judged sparse probes only."""
    cfg = config or ProbeConfig()
    t0 = time.perf_counter()
    languages = set(cfg.languages or ())

    def keep(lang: str) -> bool:
        return not languages or lang in languages

    result = CheckpointProbes(label=label, spec=spec, model_id=model.model_id, dtype=getattr(model, "dtype", None),
                              material=material_digest(cfg.probe_dir), settings=cfg.digest())
    hf_model, tokenizer = getattr(model, "model", None), getattr(model, "tokenizer", None)
    if hf_model is not None and tokenizer is not None:
        texts = [t for t in load_probe_texts(cfg.probe_dir) if keep(t.language)]
        result.perplexity = perplexity_by_group(hf_model, tokenizer, texts, cfg.perplexity)
    preference = cfg.run_preference and hf_model is not None and tokenizer is not None
    if not (preference or cfg.run_sparse):
        return _finish(result, t0)
    questions = [q for q in load_questions(cfg.probe_dir) if keep(q.language)]
    fewshot = load_fewshot(cfg.probe_dir)
    if preference:
        result.margins = question_margins(model, questions, fewshot, load_openings(cfg.probe_dir), cfg.preference)
        result.preference = score_margins(result.margins, cfg.preference)
    if cfg.run_sparse:
        if judge is None:
            judge = load_judge(cfg.sparse.judge)
        result.probes, result.answers = run_sparse_probes(model, judge, questions, fewshot, cfg.sparse)
        result.judge_id = judge.judge_id
    return _finish(result, t0)


def _finish(result: CheckpointProbes, t0: float) -> CheckpointProbes:
    result.seconds = round(time.perf_counter() - t0, 2)
    result.created_at = datetime.now(UTC).isoformat()
    return result


def run_probes(spec: str, label: str | None = None, config: ProbeConfig | None = None,
               judge=None) -> CheckpointProbes:
    """Load the model named by `spec` (any backend), probe it, release it."""
    cfg = config or ProbeConfig()
    local = spec.partition(":")[0] in ("hf", "embedded")  # API backends take no batch size
    model = load_model(spec, **({"batch_size": cfg.batch_size} if local else {}))
    try:
        return probe_model(model, label or spec, spec, cfg, judge)
    finally:
        model.close()
