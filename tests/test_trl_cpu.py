"""The CPU switch to TRL's compact LM-head path: same log-probs and gradients, fewer positions scored."""

import pytest
import torch

trl_utils = pytest.importorskip("trl.trainer.utils")

from raipipe.posttrain.trl_cpu import score_answers_only_on_cpu  # noqa: E402


def _tiny_causal_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config)
    trl_utils.add_fused_lm_head(model)
    return model


def _log_probs_and_grads(model, input_ids, labels):
    model.zero_grad()
    out = model(input_ids=input_ids, labels=labels, fused_lm_head=True)
    out.log_probs.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.log_probs.detach(), grads


def test_compact_path_matches_full_path_on_cpu(monkeypatch):
    from trl.kernels.chunked_logprob import _use_triton as trl_own

    # start from TRL's own rule (earlier training tests in the session switched it); restored afterwards
    monkeypatch.setattr(trl_utils, "_use_triton", trl_own)
    model = _tiny_causal_lm()
    input_ids = torch.randint(0, 97, (3, 12))
    labels = input_ids.clone()
    labels[:, :7] = -100  # prompt positions carry no label, as in DPO/GRPO batches
    labels[2, 10:] = -100  # and a padded tail
    assert not trl_utils._use_triton(torch.device("cpu"))
    full_lp, full_grads = _log_probs_and_grads(model, input_ids, labels)

    assert score_answers_only_on_cpu() is True
    switched = trl_utils._use_triton
    assert score_answers_only_on_cpu() is True and trl_utils._use_triton is switched  # idempotent: no re-wrap
    assert trl_utils._use_triton(torch.device("cpu"))
    compact_lp, compact_grads = _log_probs_and_grads(model, input_ids, labels)

    assert torch.allclose(full_lp, compact_lp, atol=1e-6)
    assert (compact_lp[labels[:, 1:] == -100] == 0).all()
    assert full_grads.keys() == compact_grads.keys() and full_grads
    for name, g in full_grads.items():
        assert torch.allclose(g, compact_grads[name], atol=1e-6), name


def test_missing_hook_leaves_trl_alone(monkeypatch, caplog):
    monkeypatch.delattr(trl_utils, "_use_triton")
    assert score_answers_only_on_cpu() is False
    assert "scores every position" in caplog.text
