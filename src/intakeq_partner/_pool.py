"""Several small httpx connection pools behind one transport, so that each request does less pool work.

httpcore's pool re-examines every connection it holds several times per request (expiry checks with a
socket poll on each idle connection, and a list of idle connections rebuilt per idle connection), so its
cost per request grows with the pool size, quadratically in part. At 50-64 connections that was most of the
client's CPU. The same connections split over a few pools of about `SHARD_SIZE` each do the same work at a
fraction of the cost; requests go to the shard with the most free connections, so no request waits in one
shard while another has room.

Used by `Transport` whenever the caller brings neither an `httpx.AsyncClient` nor a transport of their own,
and no proxy is configured in the environment (httpx honours those only for the transport it builds itself).
Each shard is a stock `httpx.AsyncHTTPTransport`: timeouts, TLS and the httpx exceptions raised are the same.

It also keeps a malformed answer from poisoning the next one. httpcore (through h11) reads a response up to
its Content-Length, and any bytes the server sent beyond it stay in h11's buffer when the connection goes back
to the pool: the next request on that connection, perhaps another practice's, then reads them as the start of
its own answer (a forged response, or a protocol error for a POST the server did execute). So when a body
ends, the HTTP/1.1 connection behind it is asked whether anything is left over, and if so it is closed. That
state is not public in httpcore; `_h11_connection` follows its private attributes and, should they change,
finds nothing, and a test (tests/test_hostile_servers.py) fails.
"""

from __future__ import annotations

import logging
import math
import ssl
import urllib.request
from collections.abc import AsyncIterator
from typing import Any, cast

import h11
import httpx

from ._constants import LOGGER_NAME

__all__ = ["SHARD_SIZE", "ShardedTransport", "env_proxies_configured", "shard_sizes"]

logger = logging.getLogger(LOGGER_NAME)

SHARD_SIZE = 4
"""Connections per shard, roughly: small enough that a shard's scans are cheap, large enough to stay few."""


def shard_sizes(max_connections: int, shard_size: int = SHARD_SIZE) -> list[int]:
    """Split `max_connections` into about `max_connections / shard_size` shards whose sizes differ by one at most."""
    if max_connections < 1 or shard_size < 1:
        raise ValueError("max_connections and shard_size must be >= 1")
    count = math.ceil(max_connections / shard_size)
    base, extra = divmod(max_connections, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def env_proxies_configured() -> bool:
    """Whether HTTP(S)_PROXY / ALL_PROXY (or the OS equivalent) is set; NO_PROXY alone does not count."""
    return any(scheme != "no" and url for scheme, url in urllib.request.getproxies().items())


def _h11_connection(stream: httpx.AsyncByteStream) -> Any:
    """The httpcore HTTP/1.1 connection carrying this body, or None (HTTP/2, or an httpcore we do not know)."""
    pooled = getattr(stream, "_httpcore_stream", None)  # httpx's AsyncResponseStream
    body = getattr(pooled, "_stream", None)  # httpcore's PoolByteStream
    connection = getattr(body, "_connection", None)  # httpcore's HTTP11ConnectionByteStream
    return connection if isinstance(getattr(connection, "_h11_state", None), h11.Connection) else None


def _tls_holds_more(connection: Any) -> bool:
    """Whether the TLS layer under this connection holds bytes received beyond what h11 has read: a record that
    came in the same read as the answer's last one. The socket no longer shows them, so httpcore's check of
    an idle connection (is the socket readable?) would miss them and the next request would read them."""
    stream = getattr(getattr(connection, "_network_stream", None), "_stream", None)  # anyio's TLSStream
    received = getattr(stream, "_read_bio", None)  # ciphertext not yet decrypted
    decrypted = getattr(stream, "_ssl_object", None)
    return bool(getattr(received, "pending", 0)) or (decrypted is not None and decrypted.pending() > 0)


class _ReleasingStream(httpx.AsyncByteStream):
    """The shard's response body; the request stays counted against its shard until the body is closed,
    and a connection that received bytes beyond the end of the body is closed rather than reused."""

    def __init__(self, inner: httpx.AsyncByteStream, owner: ShardedTransport, shard: int) -> None:
        self._inner = inner
        self._owner = owner
        self._shard = shard
        self._released = False
        self._overrun: Any = None  # the connection to close once the body is closed

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            yield part
        # The whole body is in: anything h11 holds beyond it is not ours to read, nor the next request's.
        connection = _h11_connection(self._inner)
        if connection is not None and (connection._h11_state.trailing_data[0] or _tls_holds_more(connection)):
            self._overrun = connection

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                self._owner._in_flight[self._shard] -= 1
            if self._overrun is not None:
                # Closed after the body (closing first would let httpcore mark it idle again): a request
                # the pool hands it meanwhile finds it closed and is given another connection.
                connection, self._overrun = self._overrun, None
                logger.debug("closing a connection: its server sent bytes beyond the end of an answer")
                await connection.aclose()


class ShardedTransport(httpx.AsyncBaseTransport):
    """`len(sizes)` `httpx.AsyncHTTPTransport`s with `sizes[i]` connections each (all kept alive); with
    `max_connections=None`, one pool without a limit."""

    def __init__(
        self,
        max_connections: int | None,
        *,
        shard_size: int = SHARD_SIZE,
        keepalive_expiry: float | None = 5.0,
        verify: ssl.SSLContext | bool = True,
        proxy: httpx.URL | None = None,
    ) -> None:
        sizes = [None] if max_connections is None else shard_sizes(max_connections, shard_size)
        self.sizes: list[int | None] = list(sizes)
        if verify is True and len(self.sizes) > 1:
            # One context for all shards: loading the CA bundle once, not once per shard.
            verify = httpx.create_ssl_context()
        self.shards = [
            httpx.AsyncHTTPTransport(
                verify=verify,
                proxy=proxy,
                limits=httpx.Limits(
                    max_connections=size, max_keepalive_connections=size, keepalive_expiry=keepalive_expiry
                ),
            )
            for size in self.sizes
        ]
        self._in_flight = [0] * len(self.shards)
        self.sent = [0] * len(self.shards)
        """Requests handed to each shard so far (for tests and curiosity)."""

    @property
    def in_flight(self) -> list[int]:
        """Requests each shard holds now: sent and not yet finished (body not closed)."""
        return list(self._in_flight)

    def _pick(self) -> int:
        if len(self.sizes) == 1:
            return 0
        in_flight, sizes = self._in_flight, cast(list[int], self.sizes)  # several shards: each has a size
        best, most_free = 0, sizes[0] - in_flight[0]
        for i in range(1, len(sizes)):
            free = sizes[i] - in_flight[i]
            if free > most_free:
                best, most_free = i, free
        return best

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = self._pick()
        self._in_flight[shard] += 1
        self.sent[shard] += 1
        try:
            response = await self.shards[shard].handle_async_request(request)
        except BaseException:
            self._in_flight[shard] -= 1
            raise
        if response.is_closed:  # already read (e.g. a mock's response): nothing left to wait for
            self._in_flight[shard] -= 1
        else:
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _ReleasingStream(response.stream, self, shard)
        return response

    async def aclose(self) -> None:
        errors: list[BaseException] = []
        for shard in self.shards:
            try:
                await shard.aclose()
            except Exception as exc:  # close the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]
