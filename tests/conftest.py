"""Shared fixtures. The embedded LLM is converted once per machine (user cache) and loaded once per
test session; tests never touch the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAIPIPE_DTYPE", "float32")  # same numbers on every CPU (auto picks bf16 on some)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smollm():
    from raipipe.models import load_model

    model = load_model("embedded:smollm2", batch_size=16)
    yield model


@pytest.fixture(scope="session")
def feature_judge():
    """The feature refusal judge (frozen MiniLM + n-grams): post-training ranks with it."""
    from raipipe.judges.refusal import FeatureRefusalJudge

    return FeatureRefusalJudge()


@pytest.fixture(scope="session")
def xenc_judge():
    """The cross-encoder refusal judge (shipped weights)."""
    from raipipe.judges.refusal_xenc import CrossEncoderRefusalJudge

    return CrossEncoderRefusalJudge()


@pytest.fixture(scope="session")
def stack_judge():
    """The stacked refusal judge (its own pinned cross-encoder + lexical signals, head on the embedded model's
    labelled answers): post-training grades with it."""
    from raipipe.judges.stack import StackedRefusalJudge

    return StackedRefusalJudge()


@pytest.fixture(scope="session")
def default_judge(xenc_judge):
    """The default refusal judge: the cross-encoder and its own feature head averaged."""
    from raipipe.judges.ensemble import RefusalEnsembleJudge

    return RefusalEnsembleJudge(xenc=xenc_judge)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A two-layer random Llama with the embedded tokenizer: for tests of what a trainer is fed, not what it learns."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from raipipe.models.embedded import converted_dir

    tok = AutoTokenizer.from_pretrained(converted_dir("smollm2"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out
