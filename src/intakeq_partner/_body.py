"""Reading a response body within a size cap, decompressing it ourselves so that memory follows the cap.

httpx inflates each chunk it receives in one go: a 64 KB chunk of a gzip bomb becomes about 64 MB before
anyone can count it. Here the raw bytes are read from whatever transport is in use (the stock pool, the
sharded pool, any other httpx transport) and inflated in steps of at most `DECODE_STEP` bytes, counting as
we go, so a refusal costs about the cap, never the size the body claims to inflate to.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx

from ._constants import DECODE_STEP

__all__ = ["read_body"]


class _Inflater:
    """One content coding (gzip or deflate), inflated in bounded steps."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding in ("gzip", "x-gzip")
        # deflate is meant to be zlib-wrapped, but some servers send it raw: decide on the first bytes.
        self._zlib: zlib._Decompress | None = zlib.decompressobj(zlib.MAX_WBITS | 16) if self._gzip else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        inflater = self._zlib
        while True:
            try:
                out = inflater.decompress(data, DECODE_STEP)
            except zlib.error as exc:
                raise httpx.DecodingError(f"invalid {'gzip' if self._gzip else 'deflate'} data: {exc}") from None
            if out:
                yield out
            data = inflater.unconsumed_tail
            if not data and len(out) < DECODE_STEP:
                return


def _codings(response: httpx.Response) -> list[_Inflater]:
    """The decoders to apply, in order (the last coding applied is undone first)."""
    header = response.headers.get("Content-Encoding")
    if not header:
        return []
    inflaters = []
    for coding in reversed([c.strip().lower() for c in header.split(",")]):
        if coding in ("", "identity"):
            continue
        if coding not in ("gzip", "x-gzip", "deflate"):
            # We ask for gzip and deflate only; anything else is a server error, not something to guess at.
            raise httpx.DecodingError(f"unsupported content encoding {coding[:40]!r}")
        inflaters.append(_Inflater(coding))
    return inflaters


def _decode(chunk: bytes, inflaters: list[_Inflater], level: int = 0) -> Iterator[bytes]:
    if level == len(inflaters):
        yield chunk
        return
    for out in inflaters[level].feed(chunk):
        yield from _decode(out, inflaters, level + 1)


async def read_body(response: httpx.Response, limit: int, *, truncate: bool = False) -> tuple[bytes, bool]:
    """Read and decode the body of a streamed response, stopping once it passes `limit` bytes.

    Returns the body and whether it was complete. An incomplete body is empty, or with `truncate` its first
    `limit` bytes. Stopping early leaves the rest unread, and closing the response then closes its connection.
    Raises httpx.DecodingError on bad data. The response is closed on return; its `content` is the body returned.
    """
    if response.is_stream_consumed:  # already read (a mock, or a transport that reads eagerly)
        body = response.content
        complete = len(body) <= limit
        return body if complete else body[:limit] if truncate else b"", complete
    try:
        inflaters = _codings(response)
        length = response.headers.get("Content-Length", "")
        if not truncate and not inflaters and length.isdigit() and int(length) > limit:
            return _keep(response, b""), False  # refused on its own word, before reading a byte
        parts: list[bytes] = []
        size = 0
        async for raw in response.aiter_raw():
            for part in _decode(raw, inflaters) if inflaters else (raw,):
                size += len(part)
                if size > limit:
                    parts.append(part[: len(part) - (size - limit)] if truncate else b"")
                    return _keep(response, b"".join(parts) if truncate else b""), False
                parts.append(part)
        return _keep(response, b"".join(parts)), True
    finally:
        await response.aclose()


def _keep(response: httpx.Response, body: bytes) -> bytes:
    # httpx's own `aread()` stores the body the same way; the rest of the client reads `response.content`.
    response._content = body
    return body
