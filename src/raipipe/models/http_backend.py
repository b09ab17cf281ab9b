"""Chat backend for any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, Ollama, llama.cpp, TGI...).

Spec: `openai:MODEL@BASE_URL`, e.g. `openai:gpt-4o-mini@https://api.openai.com/v1`. Without `@URL`
the base URL comes from RAIPIPE_OPENAI_BASE_URL or OPENAI_BASE_URL; the key from OPENAI_API_KEY.

All HTTP runs on one private event loop in a daemon thread, so the sync `generate` works whether or
not the caller already has a running loop, connections are reused across calls, and the concurrency
bound holds across every caller of one backend instance (sync or async).
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import json
import os
import random
import re
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from raipipe.models.base import BackendError, ChatModel, Conversation, GenerationParams, register_backend
from raipipe.models.http_stream import AsyncioBackend

_RETRYABLE = {408, 409, 429}
_PER_POOL = 4  # connections per httpx transport (pool); see OpenAIChatBackend._setup
_SPEC = re.compile(r"^(?P<model>.+?)@(?P<url>https?://.+)$")


class HTTPBackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(description="ends before /chat/completions, e.g. http://localhost:11434/v1")
    model: str = Field(min_length=1)
    api_key: str | None = None
    concurrency: int = Field(default=16, ge=1, description="max requests in flight")
    max_retries: int = Field(default=5, ge=0, description="retries after the first attempt")
    timeout_s: float = Field(default=60.0, gt=0, description="per connect/read/write wait, as in httpx")
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0, description="also caps a server's Retry-After")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="merged into every request")

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"base_url {v!r} must start with http:// or https:// and name a host")
        return v.rstrip("/")


def _fast_fail_missing_sniffio() -> None:
    """httpcore runs `import sniffio` several times per request; when sniffio is not installed each
    attempt searches sys.path again, ~20% of the client's CPU per request. A None entry in
    sys.modules makes that import fail at once, exactly as it would anyway (installing sniffio
    also fixes it, and then this does nothing)."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def _env_proxy(url: str) -> str | None:
    """HTTP(S)_PROXY / NO_PROXY from the environment, as httpx.AsyncClient(trust_env=True) would."""
    parts, proxies = httpx.URL(url), urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return None if not proxy or urllib.request.proxy_bypass(parts.host) else proxy


def _ssl_context(url: str, proxy: str | None) -> ssl.SSLContext:
    """The verifying context for https; for plain http with no https proxy, TLS is never used, so a bare
    context (no CA certificates: it would refuse any server) saves loading the CA bundle (~20 ms, more
    on a busy machine) before the first request."""
    if url.startswith("https:") or (proxy or "").startswith("https:"):
        return httpx.create_ssl_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _transport(size: int, ssl_ctx: ssl.SSLContext, proxy: str | None) -> httpx.AsyncHTTPTransport:
    """An httpx transport over a pool of `size` keep-alive connections. Without a proxy its pool runs on
    `AsyncioBackend` (same httpcore pool and HTTP/1.1 handling, less CPU per request; see
    http_stream); proxies keep httpx's own pool, which knows how to tunnel."""
    keep = 30.0
    transport = httpx.AsyncHTTPTransport(verify=ssl_ctx, proxy=proxy, limits=httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=keep))
    if proxy is None and isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_ctx, max_connections=size, max_keepalive_connections=size, keepalive_expiry=keep,
            network_backend=AsyncioBackend())
    return transport


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_error_text(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except (ValueError, AttributeError):
        pass
    return resp.text[:500].strip() or resp.reason_phrase


@register_backend
class OpenAIChatBackend(ChatModel):
    """`openai:MODEL@BASE_URL` — any OpenAI-compatible chat server (vLLM, TGI, Ollama, a vendor API)."""

    name = "openai"

    def __init__(self, config: HTTPBackendConfig) -> None:
        self.config = config
        self._url = f"{config.base_url}/chat/completions"
        self._parsed_url = httpx.URL(self._url)  # parsed once, not per request
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._transports: list[httpx.AsyncHTTPTransport] = []
        self._slots: asyncio.LifoQueue[httpx.AsyncHTTPTransport] | None = None
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "raipipe-openai-backend"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._timeout = httpx.Timeout(config.timeout_s).as_dict()

    @classmethod
    def from_spec(cls, arg: str, **kwargs: Any) -> OpenAIChatBackend:
        """`MODEL@BASE_URL`, or `MODEL` with the URL from the environment; kwargs override config."""
        if m := _SPEC.match(arg):
            model, base_url = m["model"], m["url"]
        elif "@" in arg:
            model, _, base_url = arg.rpartition("@")
        else:
            model = arg
            base_url = os.environ.get("RAIPIPE_OPENAI_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or ""
            if not base_url:
                raise ValueError(f"model spec 'openai:{arg}' has no @BASE_URL and neither "
                                 "RAIPIPE_OPENAI_BASE_URL nor OPENAI_BASE_URL is set")
        kwargs.pop("batch_size", None)  # a local-backend memory knob callers pass to any spec; concurrency rules here
        allowed = set(HTTPBackendConfig.model_fields) - {"model", "base_url"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ValueError(f"openai backend: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
        fields: dict[str, Any] = {"model": model, "base_url": base_url, **kwargs}
        if fields.get("api_key") is None:
            fields["api_key"] = os.environ.get("OPENAI_API_KEY") or None
        return cls(HTTPBackendConfig(**fields))

    @property
    def model_id(self) -> str:
        return f"openai:{self.config.model}@{self.config.base_url}"

    # -- event loop plumbing -------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=f"raipipe-http-{self.config.model}",
                                          daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _setup(self) -> asyncio.LifoQueue[httpx.AsyncHTTPTransport]:
        """Runs on the private loop (transports and the slot queue must belong to it).

        Measured choices (benchmarks/bench_http.py, 2 cores): httpcore's pool does
        O(connections^2) bookkeeping per request (milliseconds of CPU at 64 connections), so we
        keep several small pools of `_PER_POOL` connections; and we call httpx transports
        directly, because `AsyncClient.send`'s request merging, auth/redirect/cookie hooks cost
        ~20% more CPU per request. The LIFO queue of slots is the concurrency bound and prefers
        recently used (warm) connections."""
        if self._slots is None:
            _fast_fail_missing_sniffio()
            c = self.config
            proxy = _env_proxy(self._url)
            ssl_ctx = _ssl_context(self._url, proxy)  # built once: loading CA certs per pool is slow
            slots: asyncio.LifoQueue[httpx.AsyncHTTPTransport] = asyncio.LifoQueue()
            for first in range(0, c.concurrency, _PER_POOL):
                size = min(_PER_POOL, c.concurrency - first)
                transport = _transport(size, ssl_ctx, proxy)
                self._transports.append(transport)
                for _ in range(size):
                    slots.put_nowait(transport)
            self._slots = slots
        return self._slots

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        fut = asyncio.run_coroutine_threadsafe(self._batch(conversations, params), self._ensure_loop())
        return fut.result()

    async def agenerate(self, conversations: Sequence[Conversation], params: GenerationParams
                        ) -> list[list[str]]:
        fut = asyncio.run_coroutine_threadsafe(self._batch(conversations, params), self._ensure_loop())
        return await asyncio.wrap_future(fut)

    def close(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return
        for transport in self._transports:
            asyncio.run_coroutine_threadsafe(transport.aclose(), loop).result(10)
        self._transports, self._slots = [], None
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()

    # -- requests --------------------------------------------------------------------------------
    async def _batch(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        self._setup()
        if len(conversations) == 1:  # the common call from attack threads: no gather task and future
            return [await self._one(conversations[0], params)]
        return list(await asyncio.gather(*(self._one(conv, params) for conv in conversations)))

    async def _one(self, conv: Conversation, params: GenerationParams) -> list[str]:
        """Ask for `n` choices; servers that ignore `n` or cap it get follow-up requests."""
        want = params.num_return_sequences
        out: list[str] = []
        while len(out) < want:
            need = want - len(out)
            body: dict[str, Any] = {
                "model": self.config.model,
                "messages": [{"role": m.role, "content": m.content} for m in conv],
                "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_new_tokens,
                "seed": params.seed + len(out),  # follow-ups get a fresh seed, else samples repeat
            }
            if need > 1:
                body["n"] = need
            body.update(self.config.extra_body)
            data = await self._post(body)
            choices = data.get("choices") or []
            if not isinstance(choices, list) or not choices:
                raise BackendError(f"{self._where()}: response had no choices: {str(data)[:300]}")
            out.extend(self._content(ch) for ch in choices[:need])
        return out

    def _content(self, choice: Any) -> str:
        try:
            return choice["message"]["content"] or ""
        except (KeyError, TypeError) as exc:
            raise BackendError(f"{self._where()}: malformed choice {str(choice)[:200]!r}") from exc

    def _where(self) -> str:
        return f"openai backend (model {self.config.model!r}, URL {self._url})"

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': at least half the step, never above the cap."""
        step = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        return step / 2 + random.uniform(0, step / 2)

    async def _send(self, transport: httpx.AsyncHTTPTransport, content: bytes) -> httpx.Response:
        request = httpx.Request("POST", self._parsed_url, headers=self._headers, content=content,
                                extensions={"timeout": self._timeout})
        resp = await transport.handle_async_request(request)
        try:
            await resp.aread()
        finally:
            await resp.aclose()
        resp.request = request
        return resp

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        slots = self._setup()
        content = json.dumps(body).encode()
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                transport = await slots.get()
                try:
                    resp = await self._send(transport, content)
                finally:
                    slots.put_nowait(transport)
            except httpx.TimeoutException as exc:
                problem = f"timed out after {self.config.timeout_s:g}s ({type(exc).__name__})"
                delay = self._backoff(attempt)
            except httpx.TransportError as exc:
                problem = f"connection error: {type(exc).__name__}: {exc}"
                delay = self._backoff(attempt)
            else:
                if resp.is_success:
                    try:
                        data = resp.json()
                    except ValueError:
                        data = None
                    if not isinstance(data, dict):
                        raise BackendError(f"{self._where()}: HTTP {resp.status_code} without a JSON object: "
                                           f"{resp.text[:200]!r}")
                    return data
                problem = f"HTTP {resp.status_code}: {_server_error_text(resp)}"
                if resp.status_code not in _RETRYABLE and resp.status_code < 500:
                    raise BackendError(f"{self._where()}: {problem}")
                hinted = _retry_after(resp.headers.get("retry-after"))
                delay = self._backoff(attempt) if hinted is None else (
                    min(self.config.backoff_max_s, hinted) * random.uniform(1.0, 1.1))
            if attempt + 1 < attempts:
                await asyncio.sleep(delay)
        raise BackendError(f"{self._where()}: {problem} (gave up after {attempts} attempt(s))")
