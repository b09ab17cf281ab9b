"""DPO with each pair's prompt run once (raipipe.posttrain.shared_prompt) computes what TRL computes.

A tiny random Llama with a random (non-zero) LoRA stands in for the model, so the adapter's layers take
part; test_train_posttrain.py trains the real model with the sharing on (the default)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")


def _pairs() -> list[dict[str, str]]:
    topics = ("bake bread", "plant tomatoes in a small garden on a windy balcony", "brew tea")
    return [{"prompt": f"How do I {t}?", "chosen": f"Here is how to {t}: prepare, then go on slowly.",
             "rejected": "I'm sorry, but I can't help with that."} for t in topics]


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def batch(lora_model):
    """Three pairs as TRL's collator lays them out: [prompt + chosen ; prompt + rejected], right-padded."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    _, tok = lora_model

    def ids(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    examples = [{"prompt_ids": tok.apply_chat_template([{"role": "user", "content": p["prompt"]}], tokenize=True,
                                                       add_generation_prompt=True, return_dict=True)["input_ids"],
                 "chosen_ids": ids(p["chosen"]), "rejected_ids": ids(p["rejected"])} for p in _pairs()]
    return DataCollatorForPreference(pad_token_id=tok.pad_token_id)(examples), examples


def test_shared_prefix_is_the_shortest_prompt_of_the_batch(batch):
    from raipipe.posttrain.shared_prompt import shared_prefix_length

    collated, examples = batch
    ids, mask = collated["input_ids"], collated["attention_mask"]
    assert shared_prefix_length(ids, mask) == min(len(e["prompt_ids"]) for e in examples)
    assert shared_prefix_length(ids[:5], mask[:5]) == 0  # not two halves: nothing is shared
    assert shared_prefix_length(ids[[0, 1, 2, 0, 1, 2]], mask[[0, 1, 2, 0, 1, 2]]) == int(mask[0].sum())


def test_hidden_states_and_gradients_match_the_unshared_forward(lora_model, batch):
    import torch

    from raipipe.posttrain.shared_prompt import backbone_of, sharing_prompts

    model, _ = lora_model
    collated, _ = batch
    real = collated["attention_mask"].bool()

    def run(shared: bool):
        model.zero_grad()
        backbone = backbone_of(model)
        with sharing_prompts(model) if shared else torch.enable_grad():
            hidden = backbone(input_ids=collated["input_ids"], attention_mask=collated["attention_mask"],
                              use_cache=False).last_hidden_state
        (hidden[real] ** 2).mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return hidden[real].detach(), grads

    plain_hidden, plain_grads = run(False)
    shared_hidden, shared_grads = run(True)
    torch.testing.assert_close(shared_hidden, plain_hidden, rtol=1e-4, atol=1e-5)
    assert plain_grads and plain_grads.keys() == shared_grads.keys()
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-3, atol=1e-6, msg=name)
    backbone = backbone_of(model)
    assert "forward" not in vars(backbone)  # the wrapper is gone after the block
    with sharing_prompts(model):
        outer = vars(backbone)["forward"]
        with sharing_prompts(model):
            pass
        assert vars(backbone)["forward"] is outer  # a nested block leaves the enclosing one's wrapper in place


@pytest.mark.parametrize("precompute", [True, False], ids=["reference-pass-first", "reference-every-step"])
def test_dpo_losses_are_the_same_with_and_without_sharing(tiny_model_dir, tmp_path, monkeypatch, precompute):
    from transformers.models.llama.modeling_llama import LlamaModel

    from raipipe.posttrain.dpo import DPOSettings, train_dpo

    widths: list[tuple[int, int]] = []  # (rows, tokens) of every backbone pass, as PEFT and TRL call it
    original = LlamaModel.forward

    def spy(self, input_ids=None, **kwargs):
        widths.append(tuple(input_ids.shape))
        return original(self, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(LlamaModel, "forward", spy)

    def losses(share: bool) -> list[float]:
        widths.clear()
        out = tmp_path / f"share-{share}"
        s = DPOSettings(model=f"hf:{tiny_model_dir}", output_dir=out, max_steps=2, batch_size=3, grad_accum=1,
                        learning_rate=1e-2, save_steps=100, lora={"r": 4, "alpha": 8}, share_prompt_pass=share,
                        precompute_ref_log_probs=precompute)
        train_dpo(_pairs(), s)
        rows = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if "loss" in r]

    plain = losses(False)
    passes = len(widths)  # reference and policy passes over 3 pairs × 2 answers, whole
    assert passes >= 3 and {rows for rows, _ in widths} == {6}
    shared = losses(True)
    rows = [rows for rows, _ in widths]  # each pass now: the 3 prompts, then the 6 answers on their cache
    assert len(rows) == 2 * passes and rows.count(3) == rows.count(6) == passes
    assert len(plain) == 2 and plain[1] != plain[0]  # the second step sees the first step's update
    assert shared == pytest.approx(plain, rel=1e-4)
