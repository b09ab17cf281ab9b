"""The shipped post-training configs parse (typed, extra keys forbidden) and keep the issue's guarantees."""

from __future__ import annotations

from pathlib import Path

import pytest

from raipipe.policy.loader import PolicyError
from raipipe.posttrain.config import PostTrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["posttrain-default.yaml", "posttrain-smoke.yaml"])
def test_shipped_configs_load(name):
    cfg = PostTrainConfig.load(CONFIGS / name)
    assert cfg.model == "embedded:smollm2" and cfg.sample.dataset == "seed:train"
    assert cfg.sample.num_samples - cfg.sample.distilled_samples >= 2 and cfg.sample.temperature > 0
    assert cfg.select.datasets == ["seed:test"] and cfg.rank.mode == "ai"
    assert cfg.dpo.lora.full_finetune is False  # LoRA by default


def test_default_config_is_the_measured_one():
    cfg = PostTrainConfig.load(CONFIGS / "posttrain-default.yaml")
    assert cfg.sample.num_samples == 4 and cfg.sample.policy_refusal and cfg.decisive_only
    assert cfg.sample.greedy_sample and cfg.pair_strategy == "greedy-anchored" and cfg.add_clearest == ["harmful"]
    assert cfg.dpo.loss_type == ["sigmoid", "sft"] and len(cfg.dpo.loss_weights or []) == 2


def test_unknown_key_names_file_line_and_field(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("model: embedded:smollm2\ndpo: {epochs: 1, learnin_rate: 0.1}\n")
    with pytest.raises(PolicyError, match=r"c\.yaml:2: field 'dpo\.learnin_rate'"):
        PostTrainConfig.load(bad)


def test_pair_weights_are_validated_with_file_and_field(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("model: embedded:smollm2\npair_weights: {'benign:es': 2, 'harmless': 2}\n")
    with pytest.raises(PolicyError, match=r"c\.yaml.*pair_weights.*label must be 'harmful' or 'benign'"):
        PostTrainConfig.load(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("pair_weights: {'benign:es': 2, harmful: 1}\n")
    assert PostTrainConfig.load(ok).pair_weights == {"benign:es": 2, "harmful": 1}


def test_add_clearest_is_validated_with_file_and_field(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("pair_strategy: greedy-anchored\nadd_clearest: [harmful, 'harmfull:es']\n")
    with pytest.raises(PolicyError, match=r"c\.yaml.*add_clearest.*label must be 'harmful' or 'benign'"):
        PostTrainConfig.load(bad)
    bad.write_text("pair_strategy: best-vs-worst\nadd_clearest: [harmful]\n")
    with pytest.raises(PolicyError, match=r"c\.yaml.*add_clearest adds pairs to greedy-anchored ones"):
        PostTrainConfig.load(bad)


def test_selection_judge_is_configurable():
    from raipipe.judges.llm_judge import RubricJudge
    from raipipe.judges.refusal import RefusalJudge

    assert isinstance(PostTrainConfig().select.build_judge(), RefusalJudge)
    cfg = PostTrainConfig.model_validate({"select": {"judge": "rubric", "judge_model": "openai:judge-7b@http://127.0.0.1:9/v1"}})
    judge = cfg.select.build_judge()
    assert isinstance(judge, RubricJudge) and judge.judge_id.startswith("rubric:openai:judge-7b@")
    with pytest.raises(ValueError, match="unknown judge"):
        PostTrainConfig.model_validate({"select": {"judge": "oracle"}}).select.build_judge()
