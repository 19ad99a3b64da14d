"""Small HTTP/1.1 servers of our own, for the faults the fake IntakeQ cannot make.

Each server listens on 127.0.0.1 only, reads requests with asyncio streams, and answers each one with a
`Reply`: a coroutine that writes whatever bytes it likes, framing errors included. Every loop is bounded
(`max_requests` per server, replies of a fixed length) and the server stops when its `async with` ends.
Nothing here knows which HTTP stack the client uses, so the same tests can run over any of them.

    async with serve(surplus(b'{"Id":"a"}', b"junk")) as server:
        ... a client at server.base_url ...
    assert [r.method for r in server.requests] == ["GET"]

Replies on offer (all return a `Reply`; combine them per request with `sequence` or `by_path`):

- `respond`: a well-formed answer (status, headers, body), optionally with a Content-Length of your choice;
- `trickle`: the head or the body one byte at a time, each after `interval` seconds;
- `surplus`: a body followed by bytes beyond its Content-Length;
- `counts_characters`: a Content-Length that counts the text's characters, not its UTF-8 bytes;
- `gzip_bomb`: a small gzip body that inflates to `size` bytes;
- `with_charset`: a text body whose Content-Type names an arbitrary charset;
- `echo_key`: the request's X-Auth-Key sent back in a header and in the body;
- `hang`: reads the request and never answers (until the server stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "RawServer",
    "Reply",
    "Seen",
    "by_path",
    "counts_characters",
    "echo_key",
    "gzip_bomb",
    "hang",
    "respond",
    "sequence",
    "serve",
    "surplus",
    "trickle",
    "with_charset",
]

JSON = "application/json; charset=utf-8"


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    path: str  # with the query, as sent
    headers: dict[str, str]  # names in lower case
    body: bytes
    connection: int  # which connection it came on, counted from 1


Reply = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    base_url: str
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    """Connections accepted so far."""
    peer_certificates: list[object] = field(default_factory=list)
    """Over TLS: the client certificate each connection showed (None: none)."""

    def count(self, method: str, path: str | None = None) -> int:
        """Requests seen with this method (and path, without the query)."""
        return sum(1 for r in self.requests if r.method == method and (path is None or r.path.split("?")[0] == path))


async def _read_request(reader: asyncio.StreamReader, connection: int) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    try:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return Seen(method, target, headers, body, connection)


@contextlib.asynccontextmanager
async def serve(reply: Reply, *, max_requests: int = 50, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    """Run a server answering every request with `reply` (at most `max_requests`, then it hangs up); over TLS
    with `tls` (its base_url then https)."""
    server_state = RawServer(base_url="")
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        server_state.connections += 1
        number = server_state.connections
        if tls is not None:
            server_state.peer_certificates.append(writer.get_extra_info("peercert"))
        try:
            while len(server_state.requests) < max_requests:
                seen = await _read_request(reader, number)
                if seen is None:
                    break
                server_state.requests.append(seen)
                await reply(seen, writer)
                await writer.drain()
                if seen.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    server_state.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        async with server:
            yield server_state
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.close()


# ----- replies


def _head(status: int, headers: Mapping[str, str], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(
    status: int = 200,
    body: bytes | str | object = b"",
    *,
    headers: Mapping[str, str] | None = None,
    content_length: int | None = None,
) -> Reply:
    """A complete answer. `body` may be bytes, text (UTF-8) or anything JSON (sent as JSON).
    `content_length` overrides the true length (a lie the client must survive)."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    all_headers = {"Content-Type": JSON, **(headers or {})}
    length = len(data) if content_length is None else content_length

    async def write(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(status, all_headers, length) + data)

    return write


def trickle(body: bytes, *, interval: float = 0.2, status: int = 200, in_head: bool = False) -> Reply:
    """Send the answer one byte every `interval` seconds: the body only, or from the head on (`in_head`).

    Each byte arrives well within any read timeout, so only a total deadline can end the call."""
    whole = _head(status, {"Content-Type": JSON}, len(body)) + body

    async def write(seen: Seen, writer: asyncio.StreamWriter) -> None:
        start = 0 if in_head else len(whole) - len(body)
        writer.write(whole[:start])
        for i in range(start, len(whole)):
            await writer.drain()
            await asyncio.sleep(interval)
            writer.write(whole[i : i + 1])

    return write


def surplus(body: bytes | str | object, extra: bytes, *, status: int = 200) -> Reply:
    """`body` with its true Content-Length, then `extra` bytes in the same write (beyond the framing)."""
    inner = respond(status, body)

    async def write(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await inner(seen, writer)
        writer.write(extra)

    return write


def counts_characters(text: str, *, status: int = 200) -> Reply:
    """UTF-8 text whose Content-Length counts characters: with any non-ASCII character, bytes are left over."""
    return respond(status, text, content_length=len(text))


def _gzip_of_zeros(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, built from one repeated block (fast even for hundreds of MB)."""
    block = 1 << 20
    blocks, rest = divmod(size, block)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    if blocks == 0:
        return compressor.compress(b"\0" * size) + compressor.flush()
    zeros = b"\0" * block
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts afresh, so every further block compresses to the same bytes.
    again = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(b"\0" * rest) + compressor.flush()
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(b"\0" * rest, crc)
    # The compressor's trailer counts only the blocks it saw: put the true CRC and length in its place.
    trailer = crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    return first + again * (blocks - 1) + tail[:-8] + trailer


def gzip_bomb(size: int, *, status: int = 200) -> Reply:
    """A gzip body (Content-Encoding: gzip) that inflates to `size` zero bytes; about size / 1000 on the wire."""
    data = _gzip_of_zeros(size)
    return respond(status, data, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})


def with_charset(charset: str, body: bytes, *, status: int = 500, media_type: str = "text/plain") -> Reply:
    """`body` as is, under a Content-Type that names `charset` (hex, base64, rot13, idna, nonsense...)."""
    return respond(status, body, headers={"Content-Type": f"{media_type}; charset={charset}"})


def echo_key(*, status: int = 500, header: str = "X-Request-Id", body: Callable[[str], object] | None = None) -> Reply:
    """Send the request's X-Auth-Key back in `header` and in the body (by default `{"Message": "bad key <key>"}`)."""

    async def write(seen: Seen, writer: asyncio.StreamWriter) -> None:
        key = seen.headers.get("x-auth-key", "")
        content = body(key) if body is not None else {"Message": f"bad key {key}"}
        await respond(status, content, headers={header: key})(seen, writer)

    return write


def hang() -> Reply:
    """Read the request and never answer (the server's exit ends the wait)."""

    async def write(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    return write


def sequence(replies: Iterable[Reply]) -> Reply:
    """The first request gets the first reply, the second the second, ...; the last one repeats."""
    pending = list(replies)

    async def write(seen: Seen, writer: asyncio.StreamWriter) -> None:
        current = pending.pop(0) if len(pending) > 1 else pending[0]
        await current(seen, writer)

    return write


def by_path(routes: Mapping[tuple[str, str], Reply], default: Reply | None = None) -> Reply:
    """Pick the reply by (method, path without the query); anything else gets `default` (or a 404)."""
    fallback = default or respond(404, {"Message": "no such route"})

    async def write(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await routes.get((seen.method, seen.path.split("?")[0]), fallback)(seen, writer)

    return write
