"""Parse a model SPEC (`embedded:smollm2`, `hf:DIR_OR_ID`, `openai:MODEL@BASE_URL`) into a backend."""

from __future__ import annotations

from raipipe.errors import ModelSpecError
from raipipe.models.base import ChatModel, registered_backends

EXAMPLES = "e.g. embedded:smollm2, hf:./my-model, openai:gpt-4o-mini@https://api.example/v1"


def check_model_spec(spec: str) -> type[ChatModel]:
    """Validate a spec without loading anything (a typo should fail before minutes of work, not after)."""
    kind, sep, arg = spec.partition(":")
    backends = registered_backends()
    if not sep or kind not in backends:
        raise ModelSpecError(f"model spec {spec!r} should be KIND:ARG with KIND one of {sorted(backends)}",
                             hint=EXAMPLES)
    backends[kind].check_spec(arg)
    return backends[kind]


def load_model(spec: str, **kwargs) -> ChatModel:
    cls = check_model_spec(spec)
    return cls.from_spec(spec.partition(":")[2], **kwargs)
