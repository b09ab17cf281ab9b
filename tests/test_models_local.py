"""The local transformers backend on the embedded model (real generation, shared model)."""

from pathlib import Path

import pytest

from raipipe.models import GenerationParams, Message, load_model, register_backend, registered_backends
from raipipe.models.base import ChatModel
from raipipe.models.embedded import converted_dir


def test_embedded_conversion_is_cached(smollm):
    d = converted_dir("smollm2")
    assert (d / "model.safetensors").exists() and (d / "tokenizer_config.json").exists()
    assert "quantization_config" not in (d / "config.json").read_text()
    assert smollm.model_id == "embedded:smollm2"


def test_batched_greedy_matches_one_at_a_time(smollm):
    prompts = ["What is the capital of France?", "Name three primary colours.", "Say hello in Spanish."]
    params = GenerationParams(max_new_tokens=12)
    convs = [[Message(role="user", content=p)] for p in prompts]
    batched = [o[0] for o in smollm.generate(convs, params)]
    single = [smollm.generate([c], params)[0][0] for c in convs]
    assert all(batched) and batched == single


def test_sampling_returns_several_distinct_completions(smollm):
    out = smollm.generate([[Message(role="user", content="Write a one-line poem about rain.")]],
                          GenerationParams(max_new_tokens=16, temperature=1.0, num_return_sequences=4, seed=1))
    assert len(out) == 1 and len(out[0]) == 4 and len(set(out[0])) > 1


def test_several_answers_reuse_one_prompt_pass_without_changing_them(smollm):
    """k answers continue from one prefill of each prompt (left-padded batch of unequal prompts): at a
    near-zero temperature every copy must equal the greedy answer, which a misaligned cache would break."""
    prompts = ["What is the capital of France?", "Name three primary colours, then explain why they mix well."]
    convs = [[Message(role="user", content=p)] for p in prompts]
    greedy = [o[0] for o in smollm.generate(convs, GenerationParams(max_new_tokens=12))]
    cold = smollm.generate(convs, GenerationParams(max_new_tokens=12, temperature=1e-4, num_return_sequences=3))
    assert [len(o) for o in cold] == [3, 3]
    assert all(o == [g] * 3 for o, g in zip(cold, greedy, strict=True))


def test_hf_spec_loads_a_model_directory(smollm):
    m = load_model(f"hf:{converted_dir('smollm2')}")
    assert m.model_id.startswith("hf:") and "#" in m.model_id
    assert m.generate_one("Hi", GenerationParams(max_new_tokens=4))


def test_bad_spec_and_registry():
    with pytest.raises(ValueError, match="KIND:ARG"):
        load_model("no-colon")

    @register_backend
    class Echo(ChatModel):
        name = "test-echo"

        @classmethod
        def from_spec(cls, arg, **kw):
            return cls()

        @property
        def model_id(self):
            return "echo"

        def generate(self, conversations, params):
            return [[c[-1].content] * params.num_return_sequences for c in conversations]

    assert "test-echo" in registered_backends()
    assert load_model("test-echo:x").generate_one("ping") == "ping"
    assert Path(converted_dir()).is_dir()
