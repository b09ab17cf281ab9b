"""`raipipe posttrain` as a list of steps: order, --only / --from, one completion record per step in the
store, resume at the step that was running, and re-runs when the config deciding a step changes.

Cheap steps stand in for the real ones (their `run` bodies are replaced); the real declarations —
names, inputs, and which config decides each step — are what is tested. tests/test_posttrain_pipeline.py
runs the real steps end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from raipipe.cli import app
from raipipe.cli.posttrain_cmd import STEPS_HELP
from raipipe.evaluate.stats import wilson
from raipipe.posttrain.config import PostTrainConfig
from raipipe.posttrain.pipeline import PostTrainPipeline
from raipipe.posttrain.resumable import stable_dump
from raipipe.posttrain.select import CandidateMetrics, choose
from raipipe.posttrain.steps import STEP_NAMES, PlanError, StepNotReady, default_steps
from raipipe.posttrain.steps.data import PairsOutput, RankOutput, SampleOutput
from raipipe.posttrain.steps.evaluation import (
    ConfirmOutput,
    ExportOutput,
    OutOfDistributionOutput,
    ReportOutput,
    SelectOutput,
)
from raipipe.posttrain.steps.ledger import DONE, FAILED, STARTED
from raipipe.posttrain.steps.training import RewardModelOutput, TrainOutput


def _selection():
    base = CandidateMetrics(name="baseline", step=0, n=4, violation=wilson(1, 2), over_refusal=wilson(0, 2),
                            violation_worst_case=wilson(1, 2), over_refusal_worst_case=wilson(0, 2))
    return choose(base, [])


def _fake_output(name: str, out: Path):
    """A valid output of each real step, as cheap as possible."""
    return {
        "sample": SampleOutput(batch_id="b1"),
        "rank": RankOutput(mode="ai", report="ranked"),
        "pairs": PairsOutput(directory=out / "pairs", n_train=3, n_heldout=1),
        "reward-model": RewardModelOutput(),
        "train": TrainOutput(algorithm="dpo", run_dir=out / "dpo", steps=2, checkpoints=[1, 2]),
        "select": SelectOutput(path=out / "selection.json", selection=_selection()),
        "confirm": ConfirmOutput(),
        "ood": OutOfDistributionOutput(),
        "export": ExportOutput(),
        "report": ReportOutput(summary_path=out / "posttrain_summary.json", report_path=out / "report.html"),
    }[name]


@pytest.fixture
def cheap(monkeypatch):
    """Replace every real step's body with one that records the call (and can be told to crash once)."""
    calls: list[str] = []
    crash: set[str] = set()

    for step in default_steps():
        def run(self, ctx, _name=step.name):
            for kind in self.inputs:  # inputs reach the step typed, from this run or the store
                assert isinstance(ctx.get(kind), kind)
            calls.append(_name)
            if _name in crash:
                crash.discard(_name)
                raise RuntimeError(f"simulated crash in {_name}")
            if _name == "report":  # just enough summary for the CLI's before/after table
                summary = {"selection": _selection().model_dump(mode="json"), "confirmation": None}
                (ctx.out / "posttrain_summary.json").write_text(json.dumps(summary))
            return _fake_output(_name, ctx.out)

        monkeypatch.setattr(type(step), "run", run)
    return calls, crash


def _pipe(tmp_path, **changes) -> PostTrainPipeline:
    return PostTrainPipeline(PostTrainConfig(out=tmp_path / "pt", **changes))


def test_steps_are_an_ordered_list_whose_inputs_come_from_earlier_steps():
    steps = default_steps()
    assert STEP_NAMES == ("sample", "rank", "pairs", "reward-model", "train", "select", "confirm", "ood", "export",
                          "report")
    assert STEPS_HELP == ", ".join(STEP_NAMES)  # the CLI's help names them without importing the steps
    made: set[type] = set()
    for step in steps:
        assert set(step.inputs) <= made, f"{step.name} reads an output no earlier step produces"
        made.add(step.output)
    assert len(made) == len(steps)  # one output type per step


def test_completion_is_recorded_the_same_way_for_every_step(tmp_path, cheap):
    calls, _ = cheap
    pipe = _pipe(tmp_path)
    results = pipe.run()
    assert calls == list(STEP_NAMES) and list(results) == list(STEP_NAMES)
    rows = pipe.ledger.all()
    digests = pipe.digests()
    assert set(rows) == set(STEP_NAMES)
    for name, row in rows.items():
        assert row.status == DONE and row.attempts == 1 and row.error == ""
        assert row.config_digest == digests[name]
        assert row.finished_at is not None and row.finished_at >= row.started_at
        assert row.summary == results[name].model_dump(mode="json")
    assert rows["sample"].summary == {"batch_id": "b1"}

    calls.clear()
    again = _pipe(tmp_path).run()  # a new process: everything done under the same config
    assert calls == [] and again["train"] == results["train"]


def test_a_crash_resumes_at_the_step_that_was_running(tmp_path, cheap):
    calls, crash = cheap
    crash.add("train")
    with pytest.raises(RuntimeError, match="simulated crash in train"):
        _pipe(tmp_path).run()
    assert calls == ["sample", "rank", "pairs", "reward-model", "train"]
    pipe = _pipe(tmp_path)
    rows = pipe.ledger.all()
    assert rows["train"].status == FAILED and "simulated crash" in rows["train"].error
    assert "select" not in rows

    calls.clear()
    pipe.run()
    assert calls == ["train", "select", "confirm", "ood", "export", "report"]  # done steps are not redone
    assert pipe.ledger.get("train").attempts == 2 and pipe.ledger.get("train").status == DONE


def test_a_killed_step_left_started_runs_again(tmp_path, cheap):
    calls, _ = cheap
    pipe = _pipe(tmp_path)
    pipe.run()
    pipe.ledger.started("select", pipe.digests()["select"])  # as if killed (kill -9) while selecting
    assert pipe.ledger.get("select").status == STARTED
    calls.clear()
    _pipe(tmp_path).run()
    assert calls == ["select"]


@pytest.mark.parametrize(("changes", "first"), [
    ({"select": {"limit": 10}}, "select"),
    ({"dpo": {"beta": 0.2}}, "train"),
    ({"heldout_fraction": 0.3}, "pairs"),
    ({"sample": {"num_samples": 2}}, "sample"),
    ({"select": {"ood_datasets": ["xstest"]}}, "ood"),  # measured after the choice: selection is not redone
])
def test_a_changed_config_reruns_the_steps_it_affects(tmp_path, cheap, capsys, changes, first):
    calls, _ = cheap
    _pipe(tmp_path).run()
    calls.clear()
    _pipe(tmp_path, **changes).run()
    assert calls[0] == first and "report" in calls
    assert not set(calls) & set(STEP_NAMES[:STEP_NAMES.index(first)])  # nothing before the first affected step
    assert f"step {first}: the config that decides it changed" in capsys.readouterr().err


@pytest.mark.parametrize(("section", "base", "option", "value", "first"), [
    ("sample", {"greedy_sample": True}, "sample_written_prompts", False, "sample"),
    ("dpo", {}, "precision", "bfloat16", "train"),
])
def test_an_option_added_later_leaves_older_runs_resumable_until_it_is_set(tmp_path, section, base, option, value,
                                                                           first):
    """Runs recorded before the option existed hashed settings without it: at its default it must not
    change a step's digest (or a resume would redo sampling and training); set, it must."""
    settings_cls = type(getattr(PostTrainConfig(), section))
    assert option in settings_cls.ADDED_LATER
    before = _pipe(tmp_path, **{section: base}).digests()
    assert option not in stable_dump(getattr(PostTrainConfig(**{section: base}), section))  # as before it existed
    assert option in stable_dump(getattr(PostTrainConfig(**{section: base | {option: value}}), section))
    changed = _pipe(tmp_path, **{section: base | {option: value}}).digests()
    moved = [name for name in STEP_NAMES if changed[name] != before[name]]
    assert moved[0] == first and "report" in moved


def test_dpo_does_not_retrain_when_only_the_reward_model_changes(tmp_path, cheap):
    calls, _ = cheap
    _pipe(tmp_path).run()
    calls.clear()
    _pipe(tmp_path, reward_model={"output_dir": "x", "epochs": 3}).run()
    assert calls == ["reward-model", "report"]


def test_only_and_from_select_steps_and_read_inputs_from_the_store(tmp_path, cheap):
    calls, _ = cheap
    pipe = _pipe(tmp_path)
    with pytest.raises(StepNotReady, match="needs the output of 'sample', which is never run"):
        pipe.run(only=["rank"])
    assert calls == []
    pipe.run()
    calls.clear()

    results = _pipe(tmp_path).run(only=["train", "pairs"])  # pipeline order, run even though done
    assert calls == ["pairs", "train"] and list(results) == ["pairs", "train"]
    calls.clear()
    _pipe(tmp_path).run(start="confirm")
    assert calls == ["confirm", "ood", "export", "report"]
    with pytest.raises(PlanError, match="unknown step 'bogus'"):
        pipe.run(only=["bogus"])
    with pytest.raises(PlanError, match="not both"):
        pipe.run(only=["train"], start="select")


def _cli_config(tmp_path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "pt")}))
    return path


def test_cli_only_from_and_step_subcommands(tmp_path, cheap):
    calls, _ = cheap
    cfg = str(_cli_config(tmp_path))
    runner = CliRunner()
    r = runner.invoke(app, ["posttrain", "--config", cfg, "--only", "rank"])
    assert r.exit_code == 2 and "raipipe posttrain --from sample" in " ".join(r.output.split())
    r = runner.invoke(app, ["posttrain", "--config", cfg, "--only", "sample"])
    assert r.exit_code == 0, r.output
    assert calls == ["sample"] and '"batch_id":"b1"' in r.output.replace(" ", "")
    r = runner.invoke(app, ["posttrain", "--config", cfg, "rank"])  # the old subcommand, mapped onto --only
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["posttrain", "--config", cfg, "--from", "pairs"])
    assert r.exit_code == 0, r.output
    assert calls == list(STEP_NAMES) and "selected baseline" in r.output
    r = runner.invoke(app, ["posttrain", "--config", cfg, "--only", "nope"])
    assert r.exit_code == 2 and "unknown step 'nope'" in r.output


def test_cli_train_subcommand_sets_the_algorithm(tmp_path, cheap):
    calls, _ = cheap
    cfg = str(_cli_config(tmp_path))
    CliRunner().invoke(app, ["posttrain", "--config", cfg])
    calls.clear()
    r = CliRunner().invoke(app, ["posttrain", "--config", cfg, "train", "grpo"])
    assert r.exit_code == 0, r.output
    assert calls == ["pairs", "train"]
    row = PostTrainPipeline(PostTrainConfig(out=tmp_path / "pt")).ledger.get("train")
    grpo = PostTrainPipeline(PostTrainConfig(out=tmp_path / "pt", algorithm="grpo")).digests()["train"]
    assert row.config_digest == grpo  # recorded under the GRPO config, so a plain DPO run will redo it
    saved = yaml.safe_load((tmp_path / "pt" / "config.yaml").read_text())
    assert saved["algorithm"] == "grpo"
