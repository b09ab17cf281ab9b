"""OpenAI-compatible backend against the real local simulator (127.0.0.1 only, no network)."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from pydantic import ValidationError

from raipipe.models import BackendError, GenerationParams, Message, load_model
from raipipe.models.http_backend import HTTPBackendConfig, OpenAIChatBackend, _env_proxy, _retry_after
from raipipe.testing import Failure, UpstreamHandle, UpstreamSimConfig, run_upstream_sim

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


@contextmanager
def backend_and_sim(sim: UpstreamSimConfig | None = None, **options) -> Iterator[
        tuple[OpenAIChatBackend, UpstreamHandle]]:
    with run_upstream_sim(sim or UpstreamSimConfig()) as (url, handle):
        backend = OpenAIChatBackend(HTTPBackendConfig(base_url=url, model="sim", **{**FAST, **options}))
        try:
            yield backend, handle
        finally:
            backend.close()


def conv(text: str) -> list[Message]:
    return [Message(role="system", content="be brief"), Message(role="user", content=text)]


def test_basic_generation_maps_params() -> None:
    sim = UpstreamSimConfig(replies={"capital of France": "Paris is the capital of France."})
    with backend_and_sim(sim) as (backend, handle):
        params = GenerationParams(max_new_tokens=4, temperature=0.7, top_p=0.9, seed=11)
        out = backend.generate([conv("hello world"), conv("What is the capital of France?")], params)
        assert out == [["Echo: hello world"], ["Paris is the capital"]]  # cut at max_tokens words
        assert backend.generate_one("plain") == "Echo: plain"
        body = handle.stats()["bodies"][0]
        assert body["model"] == "sim" and body["messages"][0] == {"role": "system", "content": "be brief"}
        assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.7, 0.9, 4, 11)
        assert "n" not in body
        assert backend.model_id == f"openai:sim@{backend.config.base_url}"


def test_n_choices_in_one_request() -> None:
    with backend_and_sim() as (backend, handle):
        out = backend.generate([conv("a"), conv("b")], GenerationParams(num_return_sequences=3))
        assert [len(x) for x in out] == [3, 3] and out[1][0] == "Echo: b"
        stats = handle.stats()
        assert stats["requests"] == 2 and all(b["n"] == 3 for b in stats["bodies"])


def test_server_returning_fewer_choices_gets_follow_up_requests() -> None:
    with backend_and_sim(UpstreamSimConfig(max_choices=2)) as (backend, handle):
        out = backend.generate([conv("a")], GenerationParams(num_return_sequences=5, seed=100))
        assert len(out[0]) == 5
        bodies = handle.stats()["bodies"]
        assert [b.get("n", 1) for b in bodies] == [5, 3, 1]
        assert [b["seed"] for b in bodies] == [100, 102, 104]  # fresh seeds so samples can differ


def test_concurrency_bound_is_respected() -> None:
    with backend_and_sim(UpstreamSimConfig(latency_s=0.05), concurrency=5) as (backend, handle):
        out = backend.generate([conv(str(i)) for i in range(30)], GenerationParams())
        assert [o[0] for o in out] == [f"Echo: {i}" for i in range(30)]  # order preserved
        assert handle.stats()["max_in_flight"] == 5


def test_429_honours_retry_after() -> None:
    sim = UpstreamSimConfig(failures=[Failure(status=429, retry_after="1", message="slow down")])
    with backend_and_sim(sim, backoff_max_s=5.0) as (backend, handle):  # the cap also bounds Retry-After
        assert backend.generate_one("x") == "Echo: x"
        arrivals = handle.stats()["arrivals"]
        assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 1.0


def test_retry_after_parsing() -> None:
    assert _retry_after("2") == 2.0 and _retry_after("0.5") == 0.5 and _retry_after(None) is None
    assert _retry_after("garbage") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (_retry_after(future) or 0) <= 30
    assert _retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert _env_proxy("https://api.example.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert _env_proxy("https://api.example.com/v1/chat/completions") == "http://proxy.internal:3128"
    assert _env_proxy("http://api.example.com/v1/chat/completions") is None
    assert _env_proxy("https://127.0.0.1:8000/v1/chat/completions") is None


def test_500_then_success_and_dropped_connection() -> None:
    sim = UpstreamSimConfig(failures=[Failure(status=500, times=2), Failure(kind="drop")])
    with backend_and_sim(sim) as (backend, handle):
        assert backend.generate_one("x") == "Echo: x"
        assert handle.stats()["requests"] == 4


def test_idle_connection_closed_by_server_is_replaced_without_a_retry() -> None:
    with backend_and_sim(concurrency=1, max_retries=0) as (backend, handle):
        assert backend.generate_one("a") == "Echo: a"
        for conn in list(handle._sim.connections):  # the server drops its idle keep-alive connection
            conn.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)  # thread-safe, unlike close()
        time.sleep(0.1)
        assert backend.generate_one("b") == "Echo: b"  # max_retries=0: a stale connection would fail
        assert handle.stats()["requests"] == 2


def test_5xx_gives_up_after_max_retries() -> None:
    sim = UpstreamSimConfig(failures=[Failure(status=503, times=99, message="overloaded")])
    with backend_and_sim(sim, max_retries=2) as (backend, handle):
        with pytest.raises(BackendError, match=r"HTTP 503: overloaded \(gave up after 3 attempt"):
            backend.generate_one("x")
        assert handle.stats()["requests"] == 3


def test_permanent_400_fails_fast() -> None:
    sim = UpstreamSimConfig(failures=[Failure(status=400, times=99, message="unknown field 'foo'")])
    with backend_and_sim(sim, backoff_base_s=5.0) as (backend, handle):
        with pytest.raises(BackendError) as err:
            backend.generate_one("x")
        assert handle.stats()["requests"] == 1  # no retry, so none of the 5 s back-off was spent
        msg = str(err.value)
        assert "HTTP 400" in msg and "unknown field 'foo'" in msg and "'sim'" in msg and "/chat/completions" in msg


def test_api_key_sent_and_401_fails_fast() -> None:
    sim = UpstreamSimConfig(api_key="sekrit")
    with backend_and_sim(sim, api_key="sekrit") as (backend, _):
        assert backend.generate_one("x") == "Echo: x"
    with backend_and_sim(sim) as (backend, handle), pytest.raises(BackendError, match="HTTP 401"):
        backend.generate_one("x")


def test_timeout_retries_then_fails() -> None:
    sim = UpstreamSimConfig(failures=[Failure(kind="hang", times=99, hang_s=30)])
    with backend_and_sim(sim, timeout_s=0.2, max_retries=2) as (backend, handle):
        with pytest.raises(BackendError, match=r"timed out after 0.2s.*gave up after 3"):
            backend.generate_one("x")
        assert handle.stats()["requests"] == 3  # each attempt reached the server and was cut at the timeout


def test_hang_once_then_success() -> None:
    sim = UpstreamSimConfig(failures=[Failure(kind="hang", hang_s=30)])
    with backend_and_sim(sim, timeout_s=0.2) as (backend, handle):
        assert backend.generate_one("x") == "Echo: x"


def test_spec_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    b = OpenAIChatBackend.from_spec("gpt-4o-mini@https://api.openai.com/v1/")
    assert (b.config.model, b.config.base_url, b.config.api_key) == ("gpt-4o-mini", "https://api.openai.com/v1", None)
    assert b.model_id == "openai:gpt-4o-mini@https://api.openai.com/v1"
    b = load_model("openai:llama3:8b@http://localhost:11434/v1", concurrency=3, batch_size=8)
    assert isinstance(b, OpenAIChatBackend)
    assert (b.config.model, b.config.base_url, b.config.concurrency) == ("llama3:8b", "http://localhost:11434/v1", 3)

    monkeypatch.setenv("OPENAI_API_KEY", "k-env")
    monkeypatch.delenv("RAIPIPE_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        OpenAIChatBackend.from_spec("m")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://fallback:1/v1")
    assert OpenAIChatBackend.from_spec("m").config.base_url == "http://fallback:1/v1"
    monkeypatch.setenv("RAIPIPE_OPENAI_BASE_URL", "http://preferred:2/v1")
    b = OpenAIChatBackend.from_spec("m")
    assert (b.config.base_url, b.config.api_key) == ("http://preferred:2/v1", "k-env")
    assert OpenAIChatBackend.from_spec("m", api_key="k-arg").config.api_key == "k-arg"

    with pytest.raises(ValidationError, match="must start with http"):
        OpenAIChatBackend.from_spec("m@localhost:8000")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['concurrncy'\]"):
        OpenAIChatBackend.from_spec("m@http://x/v1", concurrncy=4)


async def test_works_inside_a_running_event_loop() -> None:
    asyncio.get_running_loop()  # this test body runs on pytest-asyncio's loop
    with backend_and_sim(UpstreamSimConfig(latency_s=0.01), concurrency=4) as (backend, handle):
        assert backend.generate([conv("sync")], GenerationParams()) == [["Echo: sync"]]
        results = await asyncio.gather(*(backend.agenerate([conv(str(i))], GenerationParams()) for i in range(8)))
        assert [r[0][0] for r in results] == [f"Echo: {i}" for i in range(8)]
        assert handle.stats()["max_in_flight"] <= 4  # one bound across concurrent async callers


def test_simulator_models_endpoint_and_process_mode() -> None:
    sim = UpstreamSimConfig(models=["m1", "m2"], default_reply="canned")
    with run_upstream_sim(sim, mode="process") as (url, handle):
        assert url.startswith("http://127.0.0.1:")
        ids = [m["id"] for m in httpx.get(f"{url}/models").json()["data"]]
        assert ids == ["m1", "m2"]
        backend = OpenAIChatBackend(HTTPBackendConfig(base_url=url, model="m1"))
        try:
            assert backend.generate_one("anything") == "canned"
        finally:
            backend.close()
        assert handle.stats()["requests"] == 1
        assert httpx.post(f"{url}/nope").status_code == 404


def test_reply_fn_in_thread_mode() -> None:
    with run_upstream_sim(reply_fn=lambda msgs, body: f"{len(msgs)} messages to {body['model']}") as (url, _):
        backend = OpenAIChatBackend(HTTPBackendConfig(base_url=url, model="zz"))
        try:
            assert backend.generate([conv("x")], GenerationParams()) == [["2 messages to zz"]]
        finally:
            backend.close()
    with pytest.raises(ValueError, match="reply_fn"), run_upstream_sim(reply_fn=lambda m, b: "", mode="process"):
        pass
