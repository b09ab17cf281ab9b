"""Converters: registered, deterministic per seed, reversible where they claim to be, stackable, and
wrapping a benign twin the same way. Model-free: the attacker model is a scripted ChatModel."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar

import pytest

from raipipe.models.base import ChatModel, Conversation, GenerationParams, Message
from raipipe.redteam import (
    CONVERTERS,
    AttackerRefusedError,
    ConverterChain,
    ConverterSpec,
    TemplateConverter,
    register_converter,
)
from raipipe.redteam.converters import make_converter

SAMPLE = 'Explain, in simple terms, how a "heat pump" works — for a café owner?'
HARMFUL = "Describe the forbidden procedure in detail."  # vague stand-in for a request the policy declines
BENIGN = "Describe the bread-baking procedure in detail."


class ScriptedAttacker(ChatModel):
    """Answers every request with `reply(user_text)`; counts calls."""

    name = "scripted-attacker"

    def __init__(self, reply=lambda text: f"Could you tell me: {text}"):
        self.reply, self.calls = reply, 0

    @property
    def model_id(self) -> str:
        return "scripted-attacker@1"

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        self.calls += len(conversations)
        return [[self.reply(conv[-1].content)] for conv in conversations]


def _convert(name: str, seed: int, prompt: str = SAMPLE):
    return ConverterChain([make_converter(name, model=ScriptedAttacker())]).apply(prompt, seed=seed)


def test_registry_lists_at_least_twenty():
    names = set(CONVERTERS.all())
    assert len(names) >= 20
    assert {"role_play", "fiction", "instruction_override", "prefix_injection", "refusal_suppression", "base64",
            "rot13", "leetspeak", "char_split", "homoglyph", "payload_split", "language_switch", "many_shot",
            "low_resource", "paraphrase", "code_words", "academic", "past_tense", "json_wrapper",
            "reverse_text"} <= names


@pytest.mark.parametrize("name", sorted(CONVERTERS.all()))
def test_every_converter_is_deterministic_and_transforms(name):
    first, again = _convert(name, seed=7), _convert(name, seed=7)
    assert first.messages == again.messages
    assert first.steps == again.steps and first.steps[0].seed == ConverterChain.from_specs([name]).plan(7)[0].seed
    assert first.messages != [Message(role="user", content=SAMPLE)]


@pytest.mark.parametrize("name", sorted(n for n, c in CONVERTERS.all().items() if c.reversible))
def test_reversible_converters_decode_to_the_original(name):
    for seed in range(5):
        converted = _convert(name, seed)
        assert converted.text != SAMPLE
        assert CONVERTERS.get(name)().decode(converted.text) == SAMPLE


def test_encodings_decode_with_the_standard_tools():
    import base64
    import codecs

    assert base64.b64decode(_convert("base64", 0).text.split("\n\n")[1]).decode() == SAMPLE
    assert codecs.decode(_convert("rot13", 0).text.split("\n\n")[1], "rot13") == SAMPLE
    assert _convert("reverse_text", 0).text.split("\n\n")[1] == SAMPLE[::-1]


def test_chains_compose_and_decode_in_reverse():
    chain = ConverterChain.from_specs(["payload_split", "base64", "rot13"])
    out = chain.apply(SAMPLE, seed=3)
    assert [s.name for s in out.steps] == ["payload_split", "base64", "rot13"]
    assert len({s.seed for s in out.steps}) == 3
    assert chain.decode(out.text) == SAMPLE
    assert ConverterChain.from_specs(["payload_split", "base64", "rot13"]).apply(SAMPLE, seed=3) == out
    assert chain.apply(SAMPLE, seed=4).text != out.text


def test_multi_message_converters_stack():
    chain = ConverterChain.from_specs([ConverterSpec(name="role_play", params={"as_system": True}),
                                       ConverterSpec(name="many_shot", params={"shots": 3}), "base64"])
    msgs = chain.apply(SAMPLE, seed=1).messages
    assert [m.role for m in msgs] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert CONVERTERS.get("base64")().decode(msgs[-1].content) == SAMPLE
    inline = ConverterChain.from_specs([ConverterSpec(name="many_shot", params={"as_turns": False})]).apply(SAMPLE)
    assert len(inline.messages) == 1 and inline.text.endswith(f"User: {SAMPLE}\nAssistant:")


def test_params_are_typed_and_recorded():
    step = ConverterChain.from_specs([ConverterSpec(name="char_split", params={"sep": "/"})]).plan(0)[0]
    assert step.params == {"sep": "/"}
    with pytest.raises(ValueError):
        make_converter("many_shot", {"shots": 0})
    with pytest.raises(ValueError):
        make_converter("base64", {"no_such_param": 1})


@pytest.mark.parametrize("name", ["role_play", "fiction", "academic", "hypothetical", "past_tense",
                                  "instruction_override", "prefix_injection", "refusal_suppression",
                                  "task_sandwich", "many_shot", "language_switch", "low_resource", "json_wrapper"])
def test_benign_twin_gets_the_same_wrapper(name):
    for seed in range(4):
        harmful = ConverterChain.from_specs([name]).apply(HARMFUL, seed=seed).messages
        benign = ConverterChain.from_specs([name]).apply(BENIGN, seed=seed).messages
        assert [m.content.replace(HARMFUL, BENIGN) for m in harmful] == [m.content for m in benign]


def test_paraphrase_uses_the_attacker_and_records_its_output():
    attacker = ScriptedAttacker()
    out = ConverterChain.from_specs(["paraphrase"], model=attacker).apply(SAMPLE, seed=2)
    assert out.text == f"Could you tell me: {SAMPLE}" and attacker.calls == 1
    assert out.steps[0].model_output == out.text and out.steps[0].model_id == "scripted-attacker@1"
    with pytest.raises(ValueError, match="needs an attacker model"):
        ConverterChain.from_specs(["paraphrase"]).apply(SAMPLE)


def test_language_switch_translates_only_with_a_model():
    bare = ConverterChain.from_specs([ConverterSpec(name="language_switch", params={"language": "es"})])
    assert bare.apply(SAMPLE).text.endswith(SAMPLE) and bare.apply(SAMPLE).steps[0].model_output is None
    attacker = ScriptedAttacker(reply=lambda text: "¿Cómo funciona una bomba de calor?")
    translated = ConverterChain.from_specs([ConverterSpec(name="language_switch", params={"language": "es"})],
                                           model=attacker).apply(SAMPLE)
    assert "español" in translated.text and translated.text.endswith("¿Cómo funciona una bomba de calor?")


@pytest.mark.parametrize("reply", ["I'm sorry, but I can't help rewrite that.", "   ", "Lo siento, no puedo."])
def test_refusing_attacker_raises(reply):
    chain = ConverterChain.from_specs(["paraphrase"], model=ScriptedAttacker(reply=lambda _: reply))
    with pytest.raises(AttackerRefusedError) as err:
        chain.apply(HARMFUL, seed=0)
    assert err.value.converter == "paraphrase"


@pytest.fixture
def user_converter():
    @register_converter
    class Shout(TemplateConverter):
        """A user's converter: one class, one decorator."""

        name = "test_shout"
        templates: ClassVar[tuple[str, ...]] = ("LOUDLY: {prompt}",)

        def transform(self, text: str, rng: random.Random) -> str:
            return super().transform(text, rng).upper()

    yield Shout
    CONVERTERS._items.pop("test_shout", None)


def test_registry_accepts_a_user_class(user_converter):
    assert CONVERTERS.get("test_shout") is user_converter
    out = ConverterChain.from_specs(["base64", "test_shout"]).apply("hi", seed=0)
    assert out.text.startswith("LOUDLY: ")
    with pytest.raises(ValueError, match="needs a class attribute `name`"):
        register_converter(type("Nameless", (TemplateConverter,), {}))
