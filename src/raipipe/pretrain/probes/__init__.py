"""Probes of what (continued) pretraining taught: perplexity per RAI pillar against general text on
held-out team-written passages, sparse-question probes (few-shot, harmful/benign look-alikes, scored by a
judge) and the refusal-preference probe (the same look-alikes scored by the model's own likelihoods), compared
across checkpoints in one report."""

from raipipe.pretrain.probes._perplexity import (
    GroupPerplexity,
    PerplexitySettings,
    perplexity_by_group,
    windows,
)
from raipipe.pretrain.probes._preference import (
    Openings,
    PillarPreference,
    PreferenceSettings,
    QuestionMargin,
    continuation_logprobs,
    load_openings,
    question_margins,
    score_margins,
)
from raipipe.pretrain.probes._regrade import JudgeAgreement, judge_agreement, regrade
from raipipe.pretrain.probes._report import (
    PairedChange,
    ProbeComparison,
    compare,
    console_table,
    outcomes,
    paired_changes,
    paired_text,
    to_html,
    write_report,
)
from raipipe.pretrain.probes._run import CheckpointProbes, ProbeConfig, probe_model, run_probes
from raipipe.pretrain.probes._sparse import (
    PillarProbe,
    ProbeAnswer,
    SparseSettings,
    cut_answer,
    run_sparse_probes,
    score_answers,
)
from raipipe.pretrain.probes._texts import (
    GENERAL,
    FewShot,
    ProbeText,
    SparseQuestion,
    default_probe_dir,
    load_fewshot,
    load_probe_texts,
    load_questions,
    material_digest,
    overlapping,
)

__all__ = [
    "JudgeAgreement",
    "judge_agreement",
    "regrade",
    "score_margins",
    "question_margins",
    "load_openings",
    "continuation_logprobs",
    "QuestionMargin",
    "PreferenceSettings",
    "PillarPreference",
    "Openings",
    "GENERAL",
    "CheckpointProbes",
    "FewShot",
    "GroupPerplexity",
    "PerplexitySettings",
    "PairedChange",
    "PillarProbe",
    "ProbeAnswer",
    "ProbeComparison",
    "ProbeConfig",
    "ProbeText",
    "SparseQuestion",
    "SparseSettings",
    "compare",
    "console_table",
    "cut_answer",
    "default_probe_dir",
    "load_fewshot",
    "load_probe_texts",
    "load_questions",
    "material_digest",
    "outcomes",
    "overlapping",
    "paired_changes",
    "paired_text",
    "perplexity_by_group",
    "probe_model",
    "run_probes",
    "run_sparse_probes",
    "score_answers",
    "to_html",
    "windows",
    "write_report",
]
