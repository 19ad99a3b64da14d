"""Several small httpx connection pools behind one transport, so that each request does less pool work.

httpcore's pool re-examines every connection it holds several times per request (expiry checks with a
socket poll on each idle connection, and a list of idle connections rebuilt per idle connection), so its
cost per request grows with the pool size, quadratically in part. At 50-64 connections that was most of the
client's CPU. The same connections split over a few pools of about `SHARD_SIZE` each do the same work at a
fraction of the cost; requests go to the shard with the most free connections, so no request waits in one
shard while another has room.

Used by `Transport` only when the caller brings neither an `httpx.AsyncClient` nor a transport of their own,
and no proxy is configured in the environment (httpx honours those only for the transport it builds itself).
Each shard is a stock `httpx.AsyncHTTPTransport`: timeouts, TLS and the httpx exceptions raised are the same.
"""

from __future__ import annotations

import math
import ssl
import urllib.request
from collections.abc import AsyncIterator

import httpx

__all__ = ["SHARD_SIZE", "ShardedTransport", "env_proxies_configured", "shard_sizes"]

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


class _ReleasingStream(httpx.AsyncByteStream):
    """The shard's response body; the request stays counted against its shard until the body is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, owner: ShardedTransport, shard: int) -> None:
        self._inner = inner
        self._owner = owner
        self._shard = shard
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            yield part

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                self._owner._in_flight[self._shard] -= 1


class ShardedTransport(httpx.AsyncBaseTransport):
    """`len(sizes)` `httpx.AsyncHTTPTransport`s with `sizes[i]` connections each (all kept alive)."""

    def __init__(
        self,
        max_connections: int,
        *,
        shard_size: int = SHARD_SIZE,
        keepalive_expiry: float | None = 5.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.sizes = shard_sizes(max_connections, shard_size)
        if verify is True and len(self.sizes) > 1:
            # One context for all shards: loading the CA bundle once, not once per shard.
            verify = httpx.create_ssl_context()
        self.shards = [
            httpx.AsyncHTTPTransport(
                verify=verify,
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
        in_flight, sizes = self._in_flight, self.sizes
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
