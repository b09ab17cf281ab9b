"""λ-scaled LoRA adapters: the merged weights move exactly λ of the way from the base to the checkpoint."""

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from raipipe.posttrain.lora_scale import scale_adapter, scale_adapters, scale_of, scaled_name


def _tiny_base():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg)


@pytest.fixture()
def checkpoint(tmp_path):
    model = get_peft_model(_tiny_base(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a trained update (B starts at zero)
    ckpt = tmp_path / "run" / "checkpoint-3"
    model.save_pretrained(ckpt)
    (ckpt / "lineage.json").write_text(json.dumps({"kind": "lora", "step": 3}))
    return ckpt


def _merged_q(adapter_dir):
    return PeftModel.from_pretrained(_tiny_base(), adapter_dir).merge_and_unload() \
        .model.layers[0].self_attn.q_proj.weight.detach().clone()


def test_scaled_adapter_interpolates_between_base_and_checkpoint(checkpoint):
    base = _tiny_base().model.layers[0].self_attn.q_proj.weight.detach().clone()
    full = _merged_q(checkpoint)
    assert not torch.allclose(full, base)
    half_dir = scale_adapter(checkpoint, 0.5)
    assert half_dir.name == scaled_name(checkpoint, 0.5) == "checkpoint-3-x0.50"
    torch.testing.assert_close(_merged_q(half_dir) - base, 0.5 * (full - base), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(_merged_q(scale_adapter(checkpoint, 0.0)), base, rtol=0, atol=1e-6)
    lineage = json.loads((half_dir / "lineage.json").read_text())
    assert lineage["lora_scale"] == 0.5 and lineage["scaled_from"] == "checkpoint-3" and lineage["step"] == 3
    assert scale_of(half_dir) == 0.5 and scale_of(checkpoint) == 1.0


def test_scaling_is_idempotent_and_skips_the_endpoints(checkpoint):
    dirs = scale_adapters(checkpoint, [0.0, 0.25, 0.5, 0.5, 1.0])
    assert [d.name for d in dirs] == ["checkpoint-3-x0.25", "checkpoint-3-x0.50"]
    stamp = (dirs[0] / "adapter_model.safetensors").stat().st_mtime_ns
    assert scale_adapter(checkpoint, 0.25) == dirs[0]
    assert (dirs[0] / "adapter_model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in checkpoint.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_bad_scales_and_non_lora_checkpoints_are_refused(checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scale_adapter(checkpoint, 1.5)
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        scale_adapter(tmp_path, 0.5)
