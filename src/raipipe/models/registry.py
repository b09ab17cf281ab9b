"""Parse a model SPEC (`embedded:smollm2`, `hf:DIR_OR_ID`, `openai:MODEL@BASE_URL`) into a backend."""

from __future__ import annotations

from raipipe.models.base import ChatModel, registered_backends


def load_model(spec: str, **kwargs) -> ChatModel:
    kind, sep, arg = spec.partition(":")
    backends = registered_backends()
    if not sep or kind not in backends:
        raise ValueError(
            f"model spec {spec!r} should be KIND:ARG with KIND one of {sorted(backends)} "
            "(e.g. embedded:smollm2, hf:./my-model, openai:gpt-4o-mini@https://api.example/v1)"
        )
    return backends[kind].from_spec(arg, **kwargs)
