"""An httpx transport over aiohttp: httpx's API on top, aiohttp's cheaper connection handling underneath.

httpx spends most of a request's CPU in httpcore (pool bookkeeping, its per-request state machine, anyio
cancel scopes); aiohttp does the same work in a fraction of the time. Plugging aiohttp in as an
`httpx.AsyncBaseTransport` keeps the facade, respx and the tests on one API.

Ours rather than `httpx-aiohttp`'s, because what matters most here is the exception mapping, and that
package's maps aiohttp's `ServerDisconnectedError` and `ClientOSError` (a connection lost after the request
was written) to `httpx.ConnectTimeout`, which reads as "nothing was sent": a POST would be sent twice. Its map
is a module global used inside `handle_async_request` and the response stream, so overriding it means
rewriting both, which is all of it; it also lets unmapped aiohttp errors (a malformed status line) escape.

What this transport promises the retry rules (`_retry.NOTHING_SENT`):
- `httpx.ConnectError` / `httpx.ConnectTimeout` only when no connection was made, so no byte left;
- every other failure (a disconnect, a reset, a read timeout, a broken body, a garbled status line) is a
  "maybe sent" `httpx.TransportError`; no aiohttp exception ever escapes.
aiohttp's own silent resend of idempotent methods after a disconnect is switched off: retries are ours alone.
Redirects are never followed and bodies are passed on undecoded, so httpx decodes them (and our size cap
applies) exactly as on the httpx stack. aiohttp is imported when the first transport is made, not before:
importing it costs about 0.2 s.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

import httpx

if TYPE_CHECKING:
    import aiohttp
    from aiohttp.client_proto import ResponseHandler

__all__ = ["AiohttpTransport", "aiohttp_available"]


def aiohttp_available() -> bool:
    """Whether aiohttp can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


def _raise_mapped(exc: BaseException) -> NoReturn:
    """Raise the httpx exception that says what an aiohttp (or socket) failure means for a resend."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy refused the CONNECT: nothing reached IntakeQ
        raise httpx.ProxyError(f"{exc.status} {exc.message}".strip()) from None  # as httpx says it (no URL)
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.InvalidURL)):
        detail = getattr(exc, "message", "") or "invalid URL"  # their str() holds the URL, query values included
    elif isinstance(exc, aiohttp.ServerDisconnectedError):  # its str() may be the repr of a half-parsed answer
        detail = "Server disconnected"
    elif isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(exc, aiohttp.ClientSSLError):
        # Its str() says "ssl:default" even for plain http: name the scheme the URL had.
        scheme = "https" if exc._conn_key.is_ssl else "http"
        detail = f"cannot connect to {scheme}://{exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
    else:
        detail = str(exc)
    message = f"{type(exc).__name__}: {detail}".rstrip(": ")
    mapped: httpx.TransportError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # the pool wait or the TCP/TLS connect timed out
        mapped = httpx.ConnectTimeout(message)
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake: nothing was written
        mapped = httpx.ConnectError(message)
    elif isinstance(exc, (aiohttp.ServerTimeoutError, TimeoutError)):
        mapped = httpx.ReadTimeout(message)
    elif isinstance(exc, aiohttp.InvalidURL):
        mapped = httpx.UnsupportedProtocol(message)
    elif isinstance(exc, (aiohttp.ClientOSError, aiohttp.ClientConnectionResetError)):
        mapped = httpx.ReadError(message)  # the connection broke while talking: maybe sent
    else:  # a disconnect before the answer, a broken or garbled answer, anything else aiohttp raises
        mapped = httpx.RemoteProtocolError(message)
    raise mapped from None  # aiohttp's exception holds the request, and so the key: not chained


class _Body(httpx.AsyncByteStream):
    """The response body as aiohttp reads it; closing it before its end closes the connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            try:
                chunk = await content.readany()
            except (Exception, asyncio.CancelledError) as exc:
                self._response.close()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                _raise_mapped(exc)
            if not chunk:
                return
            yield chunk

    async def aclose(self) -> None:
        # Synchronous inside, so a cancellation cannot leave the connection half released.
        response = self._response
        if response.content.is_eof() and response.content.exception() is None:
            response.release()  # aiohttp itself closes it if unread bytes were left behind the answer
        else:
            response.close()


@functools.cache
def _guarded_handler() -> type[ResponseHandler]:
    """aiohttp's connection protocol, closing the connection on any byte that arrives after an answer ended.

    aiohttp already refuses to reuse a connection with unread bytes left when it is released, but bytes that
    arrive later, while the connection waits in the pool, it would parse as the answer to the next request
    (httpcore checks an idle connection for readability before reusing it; this is the same guard).
    """
    from aiohttp.client_proto import ResponseHandler

    class GuardedResponseHandler(ResponseHandler):
        _answered = False  # the current answer's last byte has been parsed

        def set_response_params(self, **kwargs: Any) -> None:
            self._answered = False  # a new request on this connection
            # The last answer's body, ended, would otherwise pass for this one's until this one's head is whole: a
            # head split across reads then looked like bytes after an answer, and the connection was cut.
            self._payload = None
            super().set_response_params(**kwargs)

        def data_received(self, data: bytes) -> None:
            if self._answered and data:
                self.force_close()
                if self.transport is not None:
                    self.transport.close()
                return
            super().data_received(data)
            payload = self._payload
            if payload is not None and payload.is_eof():
                self._answered = True

    return GuardedResponseHandler


class _ProxyAuth:
    """A proxy's Basic credentials (encoded as httpx encodes them), shown nowhere: aiohttp's BasicAuth is a
    namedtuple whose repr shows the password, and it is deprecated for this in aiohttp 3.14."""

    __slots__ = ("_value",)

    def __init__(self, proxy: httpx.URL) -> None:
        pair = f"{proxy.username}:{proxy.password}".encode()
        self._value = "Basic " + base64.b64encode(pair).decode("ascii")

    def headers(self) -> dict[str, str]:
        return {"Proxy-Authorization": self._value}

    def __repr__(self) -> str:
        return "_ProxyAuth('****')"


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`max_connections` pooled aiohttp connections (None: no limit), kept alive `keepalive_expiry` seconds.

    The aiohttp session is made on the first request, inside the running event loop.
    """

    def __init__(
        self,
        max_connections: int | None = None,
        *,
        keepalive_expiry: float = 5.0,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = False,
        proxy: httpx.URL | None = None,
    ) -> None:
        import aiohttp  # noqa: F401  (fail here, at construction, when the extra is missing)

        self.max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._verify = verify
        self._trust_env = trust_env
        # The proxy's credentials apart from its URL, so that neither a repr nor an error quotes them.
        self._proxy = None if proxy is None else str(proxy.copy_with(username=None, password=None))
        self._proxy_auth = _ProxyAuth(proxy) if proxy is not None and proxy.userinfo else None
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._closed:
            raise httpx.ConnectError("the transport is closed")  # not sent: nothing was opened
        verify = self._verify
        context: ssl.SSLContext | bool = httpx.create_ssl_context() if verify is True else verify
        connector = aiohttp.TCPConnector(
            limit=self.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=context,
        )
        # The one private hook used: the protocol factory, to add the surplus-bytes guard (tested).
        connector._factory = functools.partial(_guarded_handler(), loop=asyncio.get_running_loop())
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies, as on the other stack
            auto_decompress=False,  # httpx decodes, so its decoders (and our size cap) apply
            trust_env=self._trust_env,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        # aiohttp resends an idempotent request once after a disconnect; our retry rules must be the only ones
        # (a PUT the caller marked non-idempotent must not be sent twice behind our back).
        session._retry_connection = False
        self._session = session
        return session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        phases = request.extensions.get("timeout") or {}
        key = (phases.get("pool"), phases.get("connect"), phases.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            import aiohttp

            # aiohttp's `connect` covers the wait for a pooled connection and the connect; `sock_connect` the
            # TCP/TLS connect alone; `sock_read` each read, as httpx's read timeout. It has no write timeout.
            pool, connect, read = key
            overall = None if pool is None or connect is None else pool + connect
            timeout = aiohttp.ClientTimeout(total=None, connect=overall, sock_connect=connect, sock_read=read)
            if len(self._timeouts) < 64:
                self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import yarl

        session = self._session or self._open()
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        try:
            response = await session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # exactly the bytes httpx built, not requoted
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                compress=None,
                proxy=self._proxy,
                proxy_headers=None if self._proxy_auth is None else self._proxy_auth.headers(),
                timeout=self._timeout(request),
            )
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, (asyncio.CancelledError, httpx.HTTPError)):
                raise
            _raise_mapped(exc)
        version = response.version
        extensions: dict[str, Any] = {
            "http_version": b"HTTP/%d.%d" % (version.major, version.minor) if version else b"HTTP/1.1"
        }
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
