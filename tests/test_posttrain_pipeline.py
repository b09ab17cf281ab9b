"""`raipipe posttrain` end to end on a tiny configuration: every step runs for real (sampling,
AI-feedback ranking, reward model, DPO with LoRA, probes, selection, export) and a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from raipipe.cli import app

BENCHMARKS = Path(__file__).parent / "fixtures" / "benchmarks"


def test_posttrain_end_to_end_and_resume(tmp_path):
    out = tmp_path / "pt"
    cfg = {
        "model": "embedded:smollm2", "out": str(out),
        "sample": {"limit": 6, "num_samples": 3, "distilled_samples": 1, "max_new_tokens": 12},
        "rank": {"mode": "ai"}, "pair_weights": {"benign": 2},
        "reward_model": {"output_dir": str(out / "reward_model"), "epochs": 1, "max_steps": 2, "batch_size": 4},
        "dpo": {"max_steps": 2, "save_steps": 1, "batch_size": 2, "grad_accum": 1, "eval_every": 1,
                "max_length": 128, "probe_max_new_tokens": 8},
        "grpo": {"max_steps": 1, "num_generations": 2, "batch_size": 2, "max_completion_length": 8,
                 "save_steps": 1, "eval_every": 1, "probe_max_new_tokens": 8},
        "probe": {"n_pairs": 2},
        "select": {"datasets": ["seed:test"], "limit": 6, "max_new_tokens": 12, "confirm_datasets": ["seed:dev"],
                   "max_graded": 1, "lora_scales": [0.5],  # one checkpoint graded, plus its λ = 0.5 copy
                   "rule": {"tolerance": 1.0, "require_improvement": False},  # a checkpoint is chosen: export runs
                   # a public benchmark read from a local copy, and one from the Hub, which tests run offline
                   "ood_datasets": [f"xstest:{BENCHMARKS / 'xstest_prompts.csv'}", "harmbench"],
                   "ood_limit": 4},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["posttrain", "--config", str(path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "posttrain_summary.json").read_text())
    assert summary["feedback"].startswith("AI feedback")
    sel = summary["selection"]
    graded = sel["candidates"][0]["name"]
    assert graded in {"checkpoint-1", "checkpoint-2"}
    assert [c["name"] for c in sel["candidates"]] == [graded, f"{graded}-x0.50"]
    assert any("not graded" in r for r in sel["reasons"]) and sel["context"]["lora_scales"] == [0.5]
    assert sel["reasons"] and sel["rule_text"]
    rm = summary["reward_model"]
    assert rm["heldout_pairwise_accuracy"]["n"] > 0
    assert sum(r["n"] for r in rm["heldout_accuracy_by_label"].values()) == rm["heldout_pairwise_accuracy"]["n"]
    assert (out / "dpo" / "curves.jsonl").exists() and summary["curves"]
    lineage = json.loads((out / "pairs" / "lineage.json").read_text())
    assert lineage["policy_pack"].startswith("raipipe-default@")
    assert "<svg" in (out / "report.html").read_text()
    trained = summary["training_data"]["trained_on"]  # label:language -> pairs DPO saw, after pair weights
    assert trained and all(n % 2 == 0 for k, n in trained.items() if k.startswith("benign:"))
    # graded by the default judge, ranked by the feature judge: independent, and their agreement is shown
    assert summary["independence"] is None
    agreement = summary["judges_agreement"]
    assert agreement["judge"].startswith("refusal-stack@") and agreement["second_judge"].startswith("refusal-minilm@")
    assert set(agreement["runs"]) == {"baseline", sel["chosen"]} and agreement["runs"]["baseline"]["n"] == 6
    assert summary["judge_calibration"]["binary_agreement"]["n"] >= 150  # the held-out model answers
    assert summary["paired_test"]["violation"]["judge_error"] is not None
    report = (out / "report.html").read_text()
    assert "Two judges on the same answers" in report and "With the judge's own error" in report
    assert "By prompt label" in report
    reasons = summary["refusal_reasons"]  # how each model's refusals to harmful prompts name their reason
    graded = {c["name"] for c in sel["candidates"] if c["run_id"]}
    assert set(reasons["runs"]) == {"baseline", *graded} and reasons["judge"] == agreement["judge"]
    assert all(r["right_reason"] + r["wrong_reason"] == r["quoting_a_reason"] <= r["refusals"] <= 3
               for r in reasons["runs"].values())
    assert (out / "model" / "merged" / "config.json").exists()
    # The chosen checkpoint and the baseline again, on prompts the selection never saw.
    conf = summary["confirmation"]
    assert conf["datasets"] == ["seed:dev"] and conf["selection_datasets"] == ["seed:test"]
    assert conf["chosen"] == sel["chosen"] and conf["baseline"]["n"] == 6
    assert not sel["kept_baseline"] and conf["after"]["name"] == sel["chosen"]
    assert conf["after"]["run_id"] not in {c["run_id"] for c in sel["candidates"]} | {conf["baseline"]["run_id"]}
    assert "Confirmation on datasets selection did not see (seed:dev" in (out / "report.html").read_text()
    assert "confirmation" in result.output
    # The same two models on prompts nobody here wrote, each dataset apart; one that cannot be read is named.
    xstest, harmbench = summary["out_of_distribution"]
    assert xstest["not_measured"] is None and xstest["dataset"].startswith("xstest:")
    assert xstest["confirmation"]["chosen"] == sel["chosen"] and 0 < xstest["confirmation"]["baseline"]["n"] <= 4
    assert xstest["confirmation"]["after"]["n"] == xstest["confirmation"]["baseline"]["n"]
    assert harmbench["confirmation"] is None and "HF_HUB_OFFLINE" in harmbench["not_measured"]
    html = (out / "report.html").read_text()
    assert "Out of distribution" in html and "harmbench: not measured" in html

    # Every step recorded its completion in the store, the same way.
    from raipipe.posttrain.config import PostTrainConfig
    from raipipe.posttrain.pipeline import PostTrainPipeline
    from raipipe.posttrain.steps import STEP_NAMES

    rows = PostTrainPipeline(PostTrainConfig.load(path)).ledger.all()
    assert set(rows) == set(STEP_NAMES) and {r.status for r in rows.values()} == {"done"}
    assert rows["train"].summary["checkpoints"] == [1, 2] and rows["select"].summary["selection"]["chosen"]

    # A rerun finds every step done and finishes without training again.
    mtime = (out / "dpo" / "train_result.json").stat().st_mtime
    again = CliRunner().invoke(app, ["posttrain", "--config", str(path)])
    assert again.exit_code == 0, again.output
    assert (out / "dpo" / "train_result.json").stat().st_mtime == mtime
    assert "step train: done earlier, skipped" in again.output

    # GRPO on the same pairs: the combined reward is first scored on the held-out pairs with and without the
    # reward model, and the reward model is dropped from GRPO's reward exactly when it orders them worse.
    grpo = CliRunner().invoke(app, ["posttrain", "--config", str(path), "train", "grpo"])
    assert grpo.exit_code == 0, grpo.output
    ablation = json.loads((out / "grpo" / "reward_ablation.json").read_text())
    assert [r["reward_model_weight"] for r in ablation["rows"]] == [0.0, 1.0]
    assert ablation["grader"].startswith("refusal-stack@") and ablation["refusal_judge"].startswith("refusal-minilm@")
    assert ablation["n_grader_decided"] + sum(ablation["grader_left_out"].values()) == ablation["n_pairs"] > 0
    grpo_lineage = json.loads((out / "grpo" / "lineage.json").read_text())
    from raipipe.posttrain.reward_ablation import RewardAblation

    dropped = RewardAblation.model_validate(ablation).hurts()
    assert grpo_lineage["reward"]["config"]["reward_model_weight"] == (0.0 if dropped else 1.0)
    assert "combined reward on held-out pairs" in grpo.output
    cli = CliRunner().invoke(app, ["posttrain", "--config", str(path), "reward-ablation", "--weight", "0",
                                   "--weight", "2"])
    assert cli.exit_code == 0, cli.output
    saved = json.loads((out / "reward_model" / "ablation.json").read_text())
    assert [r["reward_model_weight"] for r in saved["rows"]] == [0.0, 2.0]
    assert "paired, weight 0 vs 2" in cli.output and "reward-model weight" in cli.output


def test_trainable_records_refuse_the_test_split():
    import pytest

    from raipipe.posttrain.sample import trainable_records

    with pytest.raises(ValueError, match="never be trained on"):
        trainable_records("seed:test", None, 0)

