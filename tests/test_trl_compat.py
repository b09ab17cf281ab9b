"""TRL workarounds (raipipe.posttrain.trl_compat): the private internals they touch still exist with the
shapes they expect, the version guard, and the CPU compact-head switch computes what TRL computes.

A failure in the first tests means a TRL upgrade moved an internal: update trl_compat, do not skip."""

import inspect
import warnings

import pytest
import torch

trl = pytest.importorskip("trl")
trl_utils = pytest.importorskip("trl.trainer.utils")

from raipipe.posttrain import trl_compat  # noqa: E402
from raipipe.posttrain.trl_compat import (  # noqa: E402
    PATCHED_INTERNALS,
    TRLCompatError,
    check_trl_version,
    cpu_compact_head,
    dpo_trainer_class,
)


def _owner(path: str):
    import importlib

    module, _, attr = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ImportError:
        return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize(("owner", "name"), PATCHED_INTERNALS, ids=[f"{o}.{n}" for o, n in PATCHED_INTERNALS])
def test_patched_internals_still_exist(owner, name):
    assert callable(getattr(_owner(owner), name, None)), f"TRL {trl.__version__} no longer has {owner}.{name}"


def test_patched_signatures_are_the_ones_overridden():
    from trl import DPOTrainer

    def params(fn) -> list[str]:
        return list(inspect.signature(fn).parameters)

    assert params(trl_utils._use_triton) == ["device"]
    assert params(DPOTrainer._prepare_dataset) == ["self", "dataset", "processing_class", "args", "dataset_name"]
    assert params(DPOTrainer.compute_ref_log_probs) == ["self", "model", "inputs"]
    assert params(DPOTrainer._compute_loss) == ["self", "model", "inputs", "return_outputs"]
    # the compact head works only while the fused head looks the name up in trl.trainer.utils at call time
    assert "_use_triton(" in inspect.getsource(trl_utils.add_fused_lm_head)
    # answer capping cuts the columns TRL's tokenisation writes
    source = inspect.getsource(inspect.getmodule(DPOTrainer))
    assert '"chosen_ids"' in source and '"rejected_ids"' in source


def test_installed_trl_is_supported():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # newer than the tested release warns: check the internals, then bump
        assert check_trl_version() == trl.__version__


def test_version_guard():
    for bad in ("0.9.6", "2.0.0", "3.1"):
        with pytest.raises(TRLCompatError, match="outside the range"):
            check_trl_version(bad)
    with pytest.warns(UserWarning, match="newer than the last release"):
        check_trl_version("1.99.0")
    assert check_trl_version("1.0.0") == "1.0.0"


def test_a_missing_internal_is_a_clear_error():
    class NoPrivates:
        pass

    with pytest.raises(TRLCompatError, match="_prepare_dataset is gone"):
        trl_compat.answer_capped(NoPrivates, 8)
    with pytest.raises(TRLCompatError, match="compute_ref_log_probs is gone"):
        trl_compat.prompt_sharing(NoPrivates)


def test_dpo_trainer_class_stacks_the_requested_workarounds():
    from trl import DPOTrainer

    assert dpo_trainer_class(None, False) is DPOTrainer
    both = dpo_trainer_class(16, True)
    assert issubclass(both, DPOTrainer) and both.__name__ == "PromptSharingDPOTrainer"
    assert both.__mro__[1].__name__ == "AnswerCappedDPOTrainer"


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


def test_compact_head_matches_full_path_on_cpu_and_is_restored():
    original = trl_utils._use_triton
    model = _tiny_causal_lm()
    input_ids = torch.randint(0, 97, (3, 12))
    labels = input_ids.clone()
    labels[:, :7] = -100  # prompt positions carry no label, as in DPO/GRPO batches
    labels[2, 10:] = -100  # and a padded tail
    assert not trl_utils._use_triton(torch.device("cpu"))
    full_lp, full_grads = _log_probs_and_grads(model, input_ids, labels)

    with cpu_compact_head() as on:
        switched = trl_utils._use_triton
        assert on and switched is not original and switched(torch.device("cpu"))
        with cpu_compact_head() as again:  # nested: no second wrapper
            assert again and trl_utils._use_triton is switched
        compact_lp, compact_grads = _log_probs_and_grads(model, input_ids, labels)
    assert trl_utils._use_triton is original  # explicit and scoped: nothing left patched

    assert torch.allclose(full_lp, compact_lp, atol=1e-6)
    assert (compact_lp[labels[:, 1:] == -100] == 0).all()
    assert full_grads.keys() == compact_grads.keys() and full_grads
    for name, g in full_grads.items():
        assert torch.allclose(g, compact_grads[name], atol=1e-6), name


def test_missing_hook_leaves_trl_alone(monkeypatch, caplog):
    monkeypatch.delattr(trl_utils, "_use_triton")
    with cpu_compact_head() as on:
        assert on is False
    assert not hasattr(trl_utils, "_use_triton")
    assert "scores every position" in caplog.text
