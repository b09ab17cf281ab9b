"""An httpcore network backend on plain asyncio protocols, for the OpenAI-compatible backend.

Why: httpcore's default backend goes through anyio, which per request adds cancel scopes, a reader
registration per read, and, in the pool's check that an idle connection is still open, a
`getpeername` and a `poll` system call per pooled connection. With many requests in flight on two
cores that was about a fifth of the client's CPU per request. Here reads wait on data the protocol
has already buffered, and "is this idle connection readable?" is a look at that buffer (data or EOF
on an idle keep-alive connection means the server closed it, as httpcore expects).

httpcore still does all of HTTP/1.1 (h11) and pooling; only the byte transport changes. TLS uses
asyncio's `start_tls`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpcore


class _Buffered(asyncio.Protocol):
    """Bytes received and not yet read, end of stream, and the one reader waiting (HTTP/1.1: one)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof, self.error = True, exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def _within(aw: Any, timeout: float | None, error: type[Exception], what: str) -> Any:
    try:
        async with asyncio.timeout(timeout):
            return await aw
    except TimeoutError:
        raise error(f"{what} timed out after {timeout}s") from None


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Buffered) -> None:
        self._transport, self._protocol = transport, protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        p = self._protocol
        if not p.buf and not p.eof:
            p.waiter = asyncio.get_running_loop().create_future()
            try:
                await _within(p.waiter, timeout, httpcore.ReadTimeout, "read")
            finally:
                p.waiter = None
        if p.buf:
            data = bytes(p.buf[:max_bytes])
            del p.buf[:max_bytes]
            return data
        if p.error is not None:
            raise httpcore.ReadError(f"connection lost: {p.error}")
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        self._transport.write(buffer)  # request bodies are small: no flow control wait needed

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        try:
            tls = await _within(loop.start_tls(self._transport, self._protocol, ssl_context,
                                               server_hostname=server_hostname), timeout,
                                httpcore.ConnectTimeout, "TLS handshake")
        except OSError as exc:  # ssl.SSLError included
            raise httpcore.ConnectError(f"TLS handshake failed: {exc}") from exc
        return AsyncioStream(tls, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return bool(self._protocol.buf) or self._protocol.eof
        key = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
               "socket": "socket"}.get(info)
        return self._transport.get_extra_info(key) if key else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            transport, protocol = await _within(loop.create_connection(_Buffered, host, port, local_addr=local),
                                                timeout, httpcore.ConnectTimeout, "connect")
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> AsyncioStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not supported by this backend")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


__all__ = ["AsyncioBackend", "AsyncioStream"]
