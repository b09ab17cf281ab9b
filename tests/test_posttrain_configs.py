"""The shipped post-training configs parse (typed, extra keys forbidden) and keep the issue's guarantees."""

from __future__ import annotations

from pathlib import Path

import pytest

from raipipe.data.seed import load_seed
from raipipe.policy.loader import PolicyError
from raipipe.posttrain.config import PostTrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["posttrain-default.yaml", "posttrain-smoke.yaml"])
def test_shipped_configs_load(name):
    cfg = PostTrainConfig.load(CONFIGS / name)
    assert cfg.model == "embedded:smollm2" and cfg.sample.dataset == "seed:train"
    assert cfg.sample.num_samples - cfg.sample.distilled_samples >= 2 and cfg.sample.temperature > 0
    assert cfg.rank.mode == "ai"
    assert cfg.dpo.lora.full_finetune is False  # LoRA by default


def test_default_chooses_on_dev_and_reports_on_test():
    """The default picks among many candidates on seed:dev, so the numbers it reports come from seed:test,
    which played no part in the choice."""
    cfg = PostTrainConfig.load(CONFIGS / "posttrain-default.yaml")
    assert cfg.select.datasets == ["seed:dev"] and cfg.select.confirm_datasets == ["seed:test"]
    assert cfg.select.lora_scales and all(0 < s < 1 for s in cfg.select.lora_scales)


def _pair(chosen: str, rejected: str, tier_gap: float, *, greedy: str | None = None, label: str = "harmful"):
    from raipipe.posttrain.pairs import PreferencePair

    return PreferencePair(prompt="p", chosen=chosen, rejected=rejected, margin=tier_gap + 1, record_id="r1",
                          label=label, rater_kinds=["ai"], batch_id="b", tier_gap=tier_gap,
                          chosen_origin="policy-model-greedy" if greedy == "chosen" else "sample",
                          rejected_origin="policy-model-greedy" if greedy == "rejected" else "sample")


def test_pair_settings_of_the_default_config_drive_which_pairs_dpo_sees():
    """Each pair setting of the shipped default changes the DPO pairs the way its name says, and changing
    it back changes them back: a config value that stopped being read would fail here."""
    from raipipe.posttrain.steps.training import dpo_pairs

    cfg = PostTrainConfig.load(CONFIGS / "posttrain-default.yaml")
    anchored = _pair("refusal", "greedy compliance", 1.0, greedy="rejected")
    clearest = _pair("refusal", "detailed compliance", 2.0)
    tie = _pair("polite refusal", "terse refusal", 0.0)
    pairs = [anchored, clearest, tie]

    picked = dpo_pairs(cfg, pairs)
    assert tie not in picked  # decisive_only: same behaviour on both sides teaches nothing
    assert picked[0] == anchored  # greedy-anchored: the model's own greedy answer is in the pair
    assert clearest in picked  # add_clearest [harmful]: the clearest harmful pair is added too

    everything = {"decisive_only": False, "pair_strategy": "all", "add_clearest": []}
    assert dpo_pairs(cfg.model_copy(update=everything), pairs) == pairs
    assert dpo_pairs(cfg.model_copy(update={"pair_strategy": "best-vs-worst", "add_clearest": []}), pairs) == [clearest]
    assert dpo_pairs(cfg.model_copy(update={"add_clearest": []}), pairs) == [anchored]
    weighted = cfg.model_copy(update={"add_clearest": [], "pair_weights": {"harmful": 3}})
    assert dpo_pairs(weighted, pairs) == [anchored] * 3  # pair_weights repeats a group's pairs

    # the default's pair_weights: Spanish and French benign pairs count twice, English ones once
    benign = {lang: _pair("answer", "refusal", 1.0, greedy="chosen", label="benign").model_copy(
        update={"record_id": f"b-{lang}", "language": lang}) for lang in ("en", "es", "fr")}
    assert dpo_pairs(cfg, list(benign.values())) == [benign["en"], *[benign["es"]] * 2, *[benign["fr"]] * 2]


@pytest.mark.parametrize(("text", "match"), [
    ("model: embedded:smollm2\ndpo: {epochs: 1, learnin_rate: 0.1}\n", r"c\.yaml:2: field 'dpo\.learnin_rate'"),
    ("model: embedded:smollm2\npair_weights: {'benign:es': 2, 'harmless': 2}\n",
     r"c\.yaml.*pair_weights.*label must be 'harmful' or 'benign'"),
    ("pair_strategy: greedy-anchored\nadd_clearest: [harmful, 'harmfull:es']\n",
     r"c\.yaml.*add_clearest.*label must be 'harmful' or 'benign'"),
    ("pair_strategy: best-vs-worst\nadd_clearest: [harmful]\n",
     r"c\.yaml.*add_clearest adds pairs to greedy-anchored ones"),
    ("select: {datasets: ['seed:dev'], confirm_datasets: ['seed:test', 'seed:dev']}\n",
     r"c\.yaml.*select.*confirm_datasets repeats \['seed:dev'\]"),
    ("select: {ood_datasets: [xstest, harmbnech]}\n", r"c\.yaml.*select\.ood_datasets.*'harmbnech' is no dataset spec"),
], ids=["unknown-key", "pair-weight-label", "add-clearest-label", "add-clearest-strategy", "confirm-overlap",
        "ood-typo"])
def test_bad_config_names_file_and_field(tmp_path, text, match):
    bad = tmp_path / "c.yaml"
    bad.write_text(text)
    with pytest.raises(PolicyError, match=match):
        PostTrainConfig.load(bad)


def test_valid_pair_weights_load(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("pair_weights: {'benign:es': 2, harmful: 1}\n")
    assert PostTrainConfig.load(ok).pair_weights == {"benign:es": 2, "harmful": 1}


def test_confirmation_sets_must_share_no_prompt_with_selection_sets(tmp_path):
    import json

    from raipipe.posttrain.confirm import check_disjoint

    check_disjoint(["seed:dev"], ["seed:test"])  # the shipped splits share no prompt
    copied = tmp_path / "mine.jsonl"  # a test prompt under another id and spacing is still the same prompt
    row = {"id": "x-1", "prompt": "  " + load_seed(split="test")[0].prompt.upper(), "label": "harmful",
           "pillar": "safety", "language": "en", "source": {"kind": "team_written", "name": "t"}}
    copied.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=r"share 1 prompt\(s\) with select\.datasets \['seed:test'\].*x-1"):
        check_disjoint(["seed:test"], [str(copied)])


def test_selection_judge_is_configurable(tmp_path):
    from raipipe.judges.llm_judge import RubricJudge
    from raipipe.judges.refusal import FeatureRefusalJudge
    from raipipe.judges.stack import StackedRefusalJudge

    default = PostTrainConfig().select.build_judge()
    assert isinstance(default, StackedRefusalJudge)
    # built apart from the judge that ranks the training answers: another model, no shared labels
    assert not set(default.head_paths) & set(FeatureRefusalJudge().train_paths)
    assert not set(default.xenc.train_paths) & set(FeatureRefusalJudge().train_paths)
    # a user's own labelled answers replace the head's data (and so its identity)
    labels = tmp_path / "my_model_answers.jsonl"
    labels.write_text('{"id": "1", "prompt": "Hi", "response": "Hello!", "label": "comply"}\n', encoding="utf-8")
    cfg = PostTrainConfig.model_validate({"select": {"judge_options": {"head_files": [str(labels)]}}})
    assert cfg.select.build_judge().judge_id != default.judge_id
    cfg = PostTrainConfig.model_validate({"select": {"judge": "rubric", "judge_model": "openai:judge-7b@http://127.0.0.1:9/v1"}})
    judge = cfg.select.build_judge()
    assert isinstance(judge, RubricJudge) and judge.judge_id.startswith("rubric:openai:judge-7b@")
    with pytest.raises(ValueError, match="unknown judge"):
        PostTrainConfig.model_validate({"select": {"judge": "oracle"}}).select.build_judge()
