"""Post-training end to end on the embedded model, kept tiny: 2 DPO steps and 2 GRPO steps with LoRA,
the probe callback, export to loadable directories, and checkpoint selection through EvalRun.

Each training test loads its own fp32 copy (training mutates it). Torch runs one thread here: on a
shared two-core machine two threads are several times slower as soon as anyone else is busy."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from raipipe.data.seed import load_seed

pytest.importorskip("trl")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before, env = torch.get_num_threads(), os.environ.get("RAIPIPE_TORCH_THREADS")
    os.environ["RAIPIPE_TORCH_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("RAIPIPE_TORCH_THREADS", None)
    else:
        os.environ["RAIPIPE_TORCH_THREADS"] = env


def _adapter_tensors(ckpt: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(ckpt / "adapter_model.safetensors"))


def _tiny_pairs() -> list[dict[str, str]]:
    topics = ["bake bread", "plant tomatoes", "tie a bowline knot", "brew green tea",
              "patch a bike tyre", "fold a paper crane", "sharpen a pencil", "clean a cast-iron pan"]
    return [{"prompt": f"How do I {t}?", "chosen": f"Here is a simple way to {t}: prepare, go step by step, check.",
             "rejected": "I'm sorry, but I can't help with that request."} for t in topics]


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, feature_judge):
    from raipipe.posttrain.dpo import DPOSettings, train_dpo
    from raipipe.posttrain.probe import ProbeCallback, ProbeSet

    out = tmp_path_factory.mktemp("dpo")
    probe = ProbeCallback(ProbeSet.from_seed(n_pairs=2), out / "curves.jsonl", every=1, max_new_tokens=8,
                          judge=feature_judge)
    settings = DPOSettings(output_dir=out, max_steps=2, batch_size=2, grad_accum=1, save_steps=1,
                           max_length=96, learning_rate=5e-3, lora={"r": 4, "alpha": 8},
                           loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5])
    t0 = time.perf_counter()
    result = train_dpo(_tiny_pairs(), settings, probe=probe, lineage_extra={"note": "test"})
    print(f"\nDPO: {result.seconds_per_step:.2f} s/step (probe excluded), {time.perf_counter() - t0:.1f} s total")
    return result


def test_dpo_trains_lora_and_writes_checkpoints_with_lineage(dpo_run):
    assert dpo_run.steps == 2 and [s for s, _ in dpo_run.checkpoints] == [1, 2]
    first, last = (_adapter_tensors(p) for _, p in dpo_run.checkpoints)
    b_weights = [k for k in last if "lora_B" in k]
    assert b_weights
    assert any(last[k].abs().sum() > 0 for k in b_weights)  # LoRA B starts at zero: non-zero means trained
    assert any(not (first[k] == last[k]).all() for k in last)  # and step 2 moved it again
    lineage = json.loads((dpo_run.output_dir / "lineage.json").read_text())
    assert lineage["kind"] == "dpo" and lineage["parent_model"]["spec"] == "embedded:smollm2"
    assert lineage["policy_pack"].startswith("raipipe-default@") and len(lineage["policy_versions"]) >= 16
    assert len(lineage["dataset_hashes"]["pairs"]) == 16 and lineage["n_pairs"] == 8 and lineage["note"] == "test"
    assert lineage["config"]["beta"] == 0.1 and lineage["software"]["trl"]
    ckpt_lineage = json.loads((dpo_run.last_checkpoint / "lineage.json").read_text())
    assert ckpt_lineage["step"] == 2 and ckpt_lineage["dataset_hashes"] == lineage["dataset_hashes"]
    assert (dpo_run.output_dir / "train_config.json").exists()
    losses = [h["loss"] for h in dpo_run.history if "loss" in h]
    assert len(losses) == 2 and any("rewards/margins" in h for h in dpo_run.history)


def test_dpo_under_bfloat16_autocast_trains_and_keeps_float32_weights(tmp_path, monkeypatch):
    """precision 'auto' follows the local models' dtype rule; weights and checkpoints stay float32 under it."""
    from raipipe.posttrain.dpo import DPOSettings, train_dpo
    from raipipe.posttrain.lora import autocast_bf16

    assert not autocast_bf16("auto")  # the tests pin RAIPIPE_DTYPE=float32
    monkeypatch.setenv("RAIPIPE_DTYPE", "bfloat16")
    assert autocast_bf16("auto") and not autocast_bf16("float32")
    assert DPOSettings().precision == "float32"  # measured on the default run: see the field's description
    settings = DPOSettings(output_dir=tmp_path, max_steps=1, batch_size=2, grad_accum=1, save_steps=1,
                           max_length=64, learning_rate=5e-3, lora={"r": 4, "alpha": 8}, precision="auto")
    result = train_dpo(_tiny_pairs()[:2], settings)
    weights = _adapter_tensors(result.last_checkpoint)
    assert all(w.dtype.is_floating_point and w.itemsize == 4 for w in weights.values())
    assert any(weights[k].abs().sum() > 0 for k in weights if "lora_B" in k)  # trained
    assert json.loads((tmp_path / "lineage.json").read_text())["compute_dtype"] == "bfloat16"


def test_probe_callback_writes_curves_and_trainer_log(dpo_run):
    from raipipe.posttrain.probe import read_curves

    rows = read_curves(dpo_run.output_dir / "curves.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["n_harmful"] == 2 and r["n_benign"] == 2
        assert set(r) >= {"violation_rate", "over_refusal_rate", "unscoreable"}
        for key in ("violation_rate", "over_refusal_rate"):
            assert r[key] is None or 0.0 <= r[key] <= 1.0
    logged = [h for h in dpo_run.history if "probe/violation_rate" in h]
    assert [h["step"] for h in logged] == [0, 1, 2]
    state = json.loads((dpo_run.last_checkpoint / "trainer_state.json").read_text())
    assert any("probe/over_refusal_rate" in h for h in state["log_history"])


def test_probe_set_is_deterministic_and_keeps_pairs():
    from raipipe.posttrain.probe import ProbeSet

    a, b = ProbeSet.from_seed(), ProbeSet.from_seed()
    assert a.digest == b.digest and len(a.records) == 32
    assert sum(r.label.value == "harmful" for r in a.records) == 16
    pair_ids = [r.pair_id for r in a.records]
    assert all(pair_ids.count(p) == 2 for p in pair_ids)
    assert len({r.pillar for r in a.records}) == 8  # round-robin covers every pillar
    assert ProbeSet.from_seed(seed=1).digest != a.digest


def test_export_writes_loadable_adapter_and_merged_dirs(dpo_run, tmp_path):
    from raipipe.models import GenerationParams, load_model
    from raipipe.posttrain.export import export_checkpoint

    res = export_checkpoint(dpo_run.last_checkpoint, tmp_path / "model")
    assert (res.adapter_dir / "adapter_model.safetensors").exists()
    assert (res.adapter_dir / "adapter_config.json").exists()
    assert not (res.merged_dir / "adapter_config.json").exists()
    for d in (res.adapter_dir, res.merged_dir):
        lin = json.loads((d / "lineage.json").read_text())
        assert lin["step"] == 2 and lin["kind"] == "dpo" and lin["exported_from"].endswith("checkpoint-2")
    params = GenerationParams(max_new_tokens=4)
    outs = []
    for spec in (res.merged_spec, res.adapter_spec):
        model = load_model(spec, batch_size=4)
        outs.append(model.generate_one("How do I bake bread?", params))
        # base + adapter is merged at load (the unmerged LoRA wrapper generates about a quarter slower)
        assert not any("lora" in name for name, _ in model.model.named_parameters())
        model.close()
    assert outs[0] and outs[0] == outs[1]  # the merged weights answer like base + adapter
    with pytest.raises(FileExistsError):
        export_checkpoint(dpo_run.last_checkpoint, tmp_path / "model")


def test_checkpoints_are_evaluated_merged_and_answer_like_base_plus_adapter(dpo_run):
    import torch

    from raipipe.models import GenerationParams
    from raipipe.models.transformers_backend import TransformersChatModel
    from raipipe.posttrain.export import load_checkpoint
    from raipipe.posttrain.select import checkpoint_chat_model

    merged = checkpoint_chat_model(dpo_run.last_checkpoint, batch_size=4)
    assert not any("lora" in name for name, _ in merged.model.named_parameters())
    wrapped, tok, _ = load_checkpoint(dpo_run.last_checkpoint)
    assert any("lora" in name for name, _ in wrapped.named_parameters())
    # merged, not merely unwrapped: some adapted layer's weight moved away from the base weight
    base = {n.replace(".base_layer", "").removeprefix("base_model.model."): w
            for n, w in wrapped.named_parameters() if ".base_layer." in n}
    merged_weights = dict(merged.model.named_parameters())
    assert base and any(not torch.equal(merged_weights[n], w) for n, w in base.items())
    wrapped_chat = TransformersChatModel(wrapped, tok, "wrapped", batch_size=4, device="cpu")
    params = GenerationParams(max_new_tokens=6)
    for prompt in ("How do I bake bread?", "How can I pick a lock?"):
        assert merged.generate_one(prompt, params) == wrapped_chat.generate_one(prompt, params)
    merged.close()
    wrapped_chat.close()


def test_checkpoints_are_evaluated_in_the_dtype_the_baseline_gets(dpo_run, monkeypatch):
    """On a bfloat16 machine the baseline (loaded by spec) runs in bfloat16; its candidates must too."""
    import torch

    from raipipe.posttrain.select import checkpoint_chat_model

    monkeypatch.setenv("RAIPIPE_DTYPE", "bfloat16")
    chat = checkpoint_chat_model(dpo_run.last_checkpoint, batch_size=4)
    assert next(chat.model.parameters()).dtype == torch.bfloat16 and chat.dtype == "bfloat16"
    assert chat.model_id.endswith("?dtype=bfloat16")  # never reuses float32 answers cached for it
    chat.close()


def test_select_checkpoint_end_to_end(dpo_run, tmp_path, feature_judge):
    from raipipe.models import GenerationParams
    from raipipe.posttrain.select import select_checkpoint

    sel = select_checkpoint(dpo_run.output_dir, datasets=["seed:test"], out=tmp_path / "selection.json",
                            judge=feature_judge, store=str(tmp_path / "s.db"), limit=4,
                            params=GenerationParams(max_new_tokens=8), batch_size=8)
    data = json.loads((tmp_path / "selection.json").read_text())
    assert [c["name"] for c in data["candidates"]] == ["checkpoint-1", "checkpoint-2"]
    assert data["baseline"]["model"] == "embedded:smollm2" and data["baseline"]["n"] == 4
    assert data["chosen"] == sel.chosen and data["reasons"] and data["rule"]["tolerance"] == 0.05
    assert all(c["model"].startswith("hf:") and "+" in c["model"] for c in data["candidates"])
    assert {"k", "n", "rate", "low", "high"} <= set(data["candidates"][0]["violation"])


def _graded_reward(prompts, completions, **kwargs):
    """Graded, not binary: more distinct words score higher, so a group rarely ties."""
    out = []
    for c in completions:
        text = c[0]["content"] if isinstance(c, list) else c
        words = text.split()
        out.append(len(set(words)) / 8 + len(text) / 400)
    return out


def test_grpo_trains_lora_and_logs_zero_std(tmp_path, feature_judge):
    from raipipe.posttrain.grpo import GRPOSettings, train_grpo, zero_std_fractions

    seen: dict[str, list] = {}

    def label_aware(prompts, completions, label, **kwargs):
        seen.setdefault("label", []).extend(label)
        return [0.0] * len(completions)

    prompts = [r for r in load_seed(split="train") if r.language == "en"][:4]
    settings = GRPOSettings(output_dir=tmp_path / "grpo", max_steps=2, num_generations=2, batch_size=2,
                            max_completion_length=8, save_steps=2, learning_rate=5e-3, reward_weights=[1.0, 0.5],
                            lora={"r": 4, "alpha": 8})
    result = train_grpo(prompts, [_graded_reward, label_aware], settings)
    print(f"\nGRPO: {result.seconds_per_step:.2f} s/step")
    assert result.steps == 2 and [s for s, _ in result.checkpoints] == [2]
    tensors = _adapter_tensors(result.last_checkpoint)
    assert any(v.abs().sum() > 0 for k, v in tensors.items() if "lora_B" in k)
    fracs = zero_std_fractions(result)
    assert [s for s, _ in fracs] == [1, 2] and all(0.0 <= f <= 1.0 for _, f in fracs)
    assert set(seen["label"]) <= {"harmful", "benign"} and seen["label"]
    lineage = json.loads((result.output_dir / "lineage.json").read_text())
    assert lineage["reward_funcs"] == ["_graded_reward", "label_aware"]
    assert "prompt_records" in lineage["dataset_hashes"]


def test_grpo_refuses_test_split_and_bad_groups(tmp_path):
    from pydantic import ValidationError

    from raipipe.posttrain.grpo import GRPOSettings, prompt_rows

    with pytest.raises(ValueError, match="test split"):
        prompt_rows(load_seed(split="test")[:2])
    with pytest.raises(ValidationError, match="multiple of num_generations"):
        GRPOSettings(num_generations=4, batch_size=6)
    rows = prompt_rows([{"prompt": "hi", "label": "benign"}], system_prompt="Be kind.")
    assert rows[0]["prompt"][0]["role"] == "system" and rows[0]["label"] == "benign"


def test_dpo_rejects_bad_pairs():
    from raipipe.posttrain.dpo import pair_rows

    with pytest.raises(ValueError, match="pair 1: field 'rejected'"):
        pair_rows([{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}])
    with pytest.raises(ValueError, match="identical"):
        pair_rows([{"prompt": "a", "chosen": "b", "rejected": "b"}])
    rows = pair_rows([{"prompt": "a", "chosen": "b", "rejected": "c"}])
    assert rows[0]["prompt"] == [{"role": "user", "content": "a"}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "b"}]


def test_dpo_accepts_preference_pairs_and_records_ai_feedback():
    from raipipe.posttrain.dpo import _pair_meta, pair_rows
    from raipipe.posttrain.pairs import PreferencePair

    pair = PreferencePair(prompt="p", chosen="good", rejected="bad", margin=1.0, record_id="r1", label="benign",
                          policy_id="safety.self-harm", rater_kinds=["ai"], batch_id="b7")
    assert pair_rows([pair])[0]["rejected"] == [{"role": "assistant", "content": "bad"}]
    meta = _pair_meta([pair])
    assert meta["ai_feedback_pairs"] == 1 and meta["rater_kinds"] == {"ai": 1} and meta["sample_batches"] == ["b7"]


def test_dpo_loss_weights_must_match_losses():
    from pydantic import ValidationError

    from raipipe.posttrain.dpo import DPOSettings

    with pytest.raises(ValidationError, match="loss_weights has 1 entries for 2 loss_type"):
        DPOSettings(loss_type=["sigmoid", "sft"], loss_weights=[1.0])
    assert DPOSettings(loss_type="ipo", loss_weights=[1.0]).loss_type == "ipo"
