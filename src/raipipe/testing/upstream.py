"""A small, real OpenAI-compatible server for tests, benchmarks and offline demos.

Why a hand-written asyncio HTTP/1.1 server rather than FastAPI/uvicorn: without uvloop and httptools,
uvicorn's pure-Python h11 path costs several times more CPU per request than a client benchmark can
spare when client and server share two cores. The protocol subset is tiny
(Content-Length bodies, keep-alive, no pipelining needed), so a lean parser is enough.

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /_sim/stats, POST /_sim/reset.
Run standalone: `python -m raipipe.testing.upstream --port 8000 --latency 0.05`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ReplyFn = Callable[[list[dict[str, Any]], dict[str, Any]], str]
_MAX_HEAD = 64 * 1024


class Failure(BaseModel):
    """One scripted failure, served to `times` consecutive chat requests (in arrival order)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["status", "hang", "drop"] = "status"  # drop = close the socket without a reply
    status: int = Field(default=500, ge=400, le=599)
    retry_after: str | None = None  # sent verbatim as the Retry-After header
    message: str = "simulated upstream failure"
    times: int = Field(default=1, ge=1)
    hang_s: float = Field(default=3600.0, ge=0.0)


class UpstreamSimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_s: float = Field(default=0.0, ge=0.0, description="fixed delay before every chat reply")
    replies: dict[str, str] = Field(default_factory=dict, description="prompt substring -> reply")
    default_reply: str | None = Field(default=None, description="None: echo the last user message")
    failures: list[Failure] = Field(default_factory=list, description="served first, in order")
    max_choices: int | None = Field(default=None, ge=1, description="cap on choices per response")
    models: list[str] = Field(default_factory=lambda: ["sim-model"])
    api_key: str | None = Field(default=None, description="if set, require 'Authorization: Bearer KEY'")


class UpstreamSim:
    """Request handling and counters; transport-independent so it runs in a thread or a process."""

    def __init__(self, config: UpstreamSimConfig, reply_fn: ReplyFn | None = None) -> None:
        self.config = config
        self.reply_fn = reply_fn
        self.connections: set[_Connection] = set()
        self.reset()

    def reset(self) -> None:
        self.t0 = time.monotonic()
        self.requests = 0  # chat completion requests, failures included
        self.other_requests = 0
        self.failures_served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []  # seconds since start/reset, per chat request
        self.bodies: list[dict[str, Any]] = []  # last 200 parsed chat request bodies

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "other_requests": self.other_requests,
            "failures_served": self.failures_served, "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight, "arrivals": list(self.arrivals),
            "bodies": list(self.bodies), "process_cpu_s": round(time.process_time(), 3),
        }

    def _failure_for(self, idx: int) -> Failure | None:
        for failure in self.config.failures:
            if idx < failure.times:
                return failure
            idx -= failure.times
        return None

    def reply_text(self, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        if self.reply_fn is not None:
            return self.reply_fn(messages, body)
        last_user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        for needle, reply in self.config.replies.items():
            if needle in last_user:
                return reply
        return self.config.default_reply if self.config.default_reply is not None else f"Echo: {last_user}"

    async def respond(self, method: str, path: str, headers: dict[str, str], body: bytes
                      ) -> tuple[int, dict[str, str], Any] | None:
        """Return (status, extra headers, JSON payload), or None to drop the connection."""
        path = path.split("?", 1)[0].rstrip("/")
        if method == "POST" and path == "/v1/chat/completions":
            return await self._chat(headers, body)
        self.other_requests += 1
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "upstream-sim"}
                    for m in self.config.models]
            return 200, {}, {"object": "list", "data": data}
        if method == "GET" and path == "/_sim/stats":
            return 200, {}, self.stats()
        if method == "POST" and path == "/_sim/reset":
            self.reset()
            return 200, {}, {"ok": True}
        return 404, {}, _error(f"no route for {method} {path}", "not_found")

    async def _chat(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any] | None:
        idx = self.requests
        self.requests += 1
        self.arrivals.append(round(time.monotonic() - self.t0, 6))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            key = self.config.api_key
            if key is not None and headers.get("authorization") != f"Bearer {key}":
                return 401, {}, _error("invalid or missing API key", "invalid_api_key")
            failure = self._failure_for(idx)
            if failure is not None:
                self.failures_served += 1
                if failure.kind == "hang":
                    await asyncio.sleep(failure.hang_s)
                if failure.kind == "drop":
                    return None
                extra = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
                return failure.status, extra, _error(failure.message, f"sim_{failure.status}")
            try:
                body = json.loads(raw)
                messages = body["messages"]
                if not isinstance(messages, list) or not messages:
                    raise ValueError("'messages' must be a non-empty list")
            except (ValueError, KeyError, TypeError) as exc:
                return 400, {}, _error(f"bad request body: {exc}", "invalid_request_error")
            self.bodies = self.bodies[-199:] + [body]
            if self.config.latency_s:
                await asyncio.sleep(self.config.latency_s)
            return 200, {}, self._completion(idx, body, messages)
        finally:
            self.in_flight -= 1

    def _completion(self, idx: int, body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        n = int(body.get("n") or 1)
        if self.config.max_choices is not None:
            n = min(n, self.config.max_choices)
        words = self.reply_text(messages, body).split(" ")
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if isinstance(limit, int) and len(words) > limit:  # crude: one word ~ one token
            words, finish = words[:limit], "length"
        text = " ".join(words)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return {
            "id": f"chatcmpl-sim-{idx}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.config.models[0]),
            "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish} for i in range(n)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(words) * n,
                      "total_tokens": prompt_tokens + len(words) * n},
        }


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": kind}}


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; requests on one connection are answered strictly in order."""

    def __init__(self, sim: UpstreamSim) -> None:
        self.sim = sim
        self.buf = bytearray()
        sim.connections.add(self)
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._dispatch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.sim.connections.discard(self)
        if self.task is not None:
            self.task.cancel()

    def _dispatch(self) -> None:
        if self.task is not None or self.closed:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                self._write(431, {}, _error("request head too large", "bad_request"), close=True)
            return
        try:
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if "chunked" in headers.get("transfer-encoding", ""):
                raise ValueError("chunked request bodies are not supported")
        except ValueError as exc:
            self._write(400, {}, _error(f"malformed request: {exc}", "bad_request"), close=True)
            return
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        close = version == "HTTP/1.0" or headers.get("connection", "").lower() == "close"
        self.task = asyncio.get_running_loop().create_task(self._handle(method, target, headers, body, close))

    async def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes, close: bool) -> None:
        try:
            result = await self.sim.respond(method, target, headers, body)
        except Exception as exc:  # a bug in a reply_fn must answer 500, not kill the connection silently
            result = 500, {}, _error(f"simulator error: {type(exc).__name__}: {exc}", "server_error")
        self.task = None
        if result is None:
            if self.transport is not None:
                self.transport.abort()
            return
        self._write(*result, close=close)
        self._dispatch()

    def _write(self, status: int, extra: dict[str, str], payload: Any, close: bool) -> None:
        if self.transport is None or self.closed:
            return
        data = json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in extra.items())]
        if close:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        if close:
            self.transport.close()
            self.closed = True


async def _start(sim: UpstreamSim, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(sim), "127.0.0.1", port, backlog=1024)


class UpstreamHandle:
    """What `run_upstream_sim` yields besides the base URL: counters and a reset."""

    def __init__(self, base_url: str, sim: UpstreamSim | None) -> None:
        self.base_url = base_url
        self._sim = sim  # None when the server runs in a subprocess

    def _call(self, method: str, path: str) -> dict[str, Any]:
        req = urllib.request.Request(self.base_url.removesuffix("/v1") + path, method=method, data=b"" if
                                     method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - always 127.0.0.1
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._sim.stats() if self._sim is not None else self._call("GET", "/_sim/stats")

    def reset(self) -> None:
        if self._sim is not None:
            self._sim.reset()
        else:
            self._call("POST", "/_sim/reset")


@contextlib.contextmanager
def run_upstream_sim(config: UpstreamSimConfig | None = None, reply_fn: ReplyFn | None = None,
                     mode: Literal["thread", "process"] = "thread") -> Iterator[tuple[str, UpstreamHandle]]:
    """Serve on a free 127.0.0.1 port; yields (base_url ending in /v1, handle); stops on exit.

    `mode="process"` runs the server in its own interpreter so it does not share the GIL with the
    client (what the benchmark wants); `reply_fn` only works in thread mode."""
    config = config or UpstreamSimConfig()
    if mode == "process":
        if reply_fn is not None:
            raise ValueError("run_upstream_sim: reply_fn cannot cross into a subprocess; use mode='thread'")
        with _run_process(config) as base_url:
            yield base_url, UpstreamHandle(base_url, None)
        return
    sim = UpstreamSim(config, reply_fn)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["server"] = loop.run_until_complete(_start(sim, 0))
        except BaseException as exc:  # surfaced to the caller below
            box["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        for conn in list(sim.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=serve, name="upstream-sim", daemon=True)
    thread.start()
    ready.wait(10)
    if "server" not in box:
        raise RuntimeError(f"upstream sim failed to start: {box.get('error', 'timeout')}")
    server: asyncio.Server = box["server"]
    base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        yield base_url, UpstreamHandle(base_url, sim)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def _run_process(config: UpstreamSimConfig) -> Iterator[str]:
    cmd = [sys.executable, "-m", "raipipe.testing.upstream", "--port", "0",
           "--config-json", config.model_dump_json()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"upstream sim subprocess did not start (exit code {proc.poll()}): {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Local OpenAI-compatible simulator (binds 127.0.0.1 only).")
    ap.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    ap.add_argument("--latency", type=float, default=None, help="seconds per chat reply")
    ap.add_argument("--config-json", default=None, help="an UpstreamSimConfig as JSON")
    args = ap.parse_args(argv)
    config = UpstreamSimConfig.model_validate_json(args.config_json) if args.config_json else UpstreamSimConfig()
    if args.latency is not None:
        config = config.model_copy(update={"latency_s": args.latency})

    async def serve() -> None:
        server = await _start(UpstreamSim(config), args.port)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        print(f"READY http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
