"""Test doubles for people who build on raipipe: test your own integrations against them, offline.

`run_upstream_sim` starts a real OpenAI-compatible HTTP server on 127.0.0.1 (in a thread or its own
process) with configurable latency, injected failures and a custom reply function, so a backend, a
judge that calls a model or a whole evaluation can be exercised without a network or an API key::

    from raipipe.models import load_model
    from raipipe.testing import UpstreamSimConfig, run_upstream_sim

    with run_upstream_sim(UpstreamSimConfig(latency_s=0.01)) as (url, handle):
        model = load_model(f"openai:sim@{url}")
        ...
        assert handle.stats()["requests"] > 0

`ScriptedChatModel` is the in-process counterpart: replies come from a function of the conversation.
"""

from raipipe.testing.scripted import ScriptedChatModel
from raipipe.testing.upstream import (
    Failure,
    UpstreamHandle,
    UpstreamSimConfig,
    run_upstream_sim,
)

__all__ = ["Failure", "ScriptedChatModel", "UpstreamHandle", "UpstreamSimConfig", "run_upstream_sim"]
