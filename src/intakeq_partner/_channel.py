"""One HTTP attempt: the pool's httpx client (ours on the chosen stack, or the user's own), the request sent
through it, its answer read within the attempt's deadline and the size cap, and a failure as a typed error.

The transport decides what to send, when and how often; a `Channel` only carries one attempt to the server
and back. One per pool, shared by the views with_options() makes; each view brings its own `AttemptLimits`.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
from collections.abc import Mapping
from typing import Any

import httpx

from . import _constants as C
from ._body import read_body
from ._deadline import AttemptDeadlineExceeded, Deadline, Watchdog
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    IntakeQError,
    ResponseTooLargeError,
    error_from_response,
    sent_key,
)
from ._network import Network
from ._redact import redact
from ._retry import NOTHING_SENT
from ._secret import Secret
from ._stack import HttpStack, build_transport

__all__ = ["AttemptLimits", "Channel", "Outcome", "default_timeout", "failure_error"]

Outcome = httpx.Response | httpx.TransportError | ResponseTooLargeError
"""What one attempt came to: an answer read whole (or its error's start), a transport failure, or an answer
over max_response_size."""


def default_timeout() -> httpx.Timeout:
    return httpx.Timeout(
        connect=C.DEFAULT_CONNECT_TIMEOUT,
        read=C.DEFAULT_READ_TIMEOUT,
        write=C.DEFAULT_WRITE_TIMEOUT,
        pool=C.DEFAULT_POOL_TIMEOUT,
    )


def _refuse_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that keeps nothing (no domain is allowed to set one)."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class AttemptLimits:
    """How one attempt is bounded: httpx's timeouts, the attempt's total time, the size of the answer read."""

    __slots__ = ("error_read_limit", "max_response_size", "seconds", "timeout", "timeouts")

    def __init__(self, timeout: httpx.Timeout | None, seconds: float | None, max_response_size: int) -> None:
        self.timeout = timeout  # None: the user's own http_client decides
        self.seconds = seconds  # attempt_timeout
        self.max_response_size = max_response_size
        self.error_read_limit = min(C.ERROR_READ_LIMIT, max_response_size)
        self.timeouts = (timeout or default_timeout()).as_dict()  # as the direct path sends them


class Channel:
    """The pool's HTTP client and the way one attempt goes through it."""

    def __init__(
        self,
        base_url: str,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        http_stack: HttpStack,
        max_concurrency: int | None,
        network: Network,
        timeout: httpx.Timeout | None,
    ) -> None:
        self.base_url = base_url
        if http_client is not None or transport is not None:
            self.http_stack = "custom"
        else:
            self.http_stack, transport = build_transport(http_stack, max_concurrency, network)
        self.owns_client = http_client is None
        self.client = http_client or httpx.AsyncClient(
            transport=transport,
            verify=network.ssl,  # for the transports httpx builds itself (a proxy set in the environment)
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            # Only what _body.read_body decodes, in bounded steps (httpx would also offer br and zstd if installed).
            headers={"User-Agent": C.USER_AGENT, "Accept-Encoding": C.ACCEPT_ENCODING, **network.headers},
            # A jar that accepts nothing: behind a proxy httpx sends through its own path (below), and its jar
            # would hand one practice's Set-Cookie to the next request, whoever's it is.
            cookies=_refuse_cookies(),
        )
        # Our own client on a transport we built or were given: each attempt goes straight to the transport,
        # skipping httpx.AsyncClient's per-request machinery (URL and header merging, the auth and redirect
        # flows, event hooks, the cookie jar), a third of the client's CPU per call on the aiohttp stack.
        # None of it applies to us: we never follow redirects, keys go per request, and IntakeQ sets no
        # cookies we want (one practice's answer must not hand state to another practice's requests).
        # A user's own http_client keeps all of it.
        self._direct = transport if http_client is None else None
        self._headers = list(self.client.headers.multi_items())
        self._urls: dict[str, httpx.URL] = {}
        self.watchdog = Watchdog()

    async def attempt(
        self,
        method: str,
        path: str,
        key: Secret,
        params: Mapping[str, str] | None,
        json: Any,
        limits: AttemptLimits,
    ) -> Outcome:
        """The request itself, its answer read within the attempt's deadline and the size cap; a failure is
        returned, not raised. A cancellation other than the attempt's own deadline is raised."""
        deadline = Deadline(self.watchdog, limits.seconds)
        try:
            with deadline:
                if self._direct is not None:
                    response = await self._send_direct(self._direct, method, path, key, params, json, limits)
                else:
                    request = self.client.build_request(
                        method,
                        self.base_url + path,
                        params=params,
                        json=json,
                        headers={C.AUTH_HEADER: key.reveal(), "Accept-Encoding": C.ACCEPT_ENCODING},
                        timeout=limits.timeout if limits.timeout is not None else httpx.USE_CLIENT_DEFAULT,
                    )
                    # A redirect would carry X-Auth-Key to wherever it points: never follow one.
                    response = await self.client.send(request, stream=True, follow_redirects=False)
                if response.is_success:
                    complete = (await read_body(response, limits.max_response_size))[1]
                else:  # only its message and excerpt are wanted: read the start, drop the rest
                    await read_body(response, limits.error_read_limit, truncate=True)
                    complete = True
        except asyncio.CancelledError:
            if deadline.ours():
                return AttemptDeadlineExceeded(f"no complete answer within attempt_timeout ({limits.seconds:g} s)")
            raise
        except httpx.TransportError as exc:
            return exc
        except httpx.DecodingError as exc:
            # A body that cannot be decompressed or decoded: no usable answer, like a broken connection.
            return httpx.RemoteProtocolError(f"undecodable response body: {exc}")
        if not complete:
            return ResponseTooLargeError(
                status_code=response.status_code, method=method, path=path, limit=limits.max_response_size
            )
        return response

    async def _send_direct(
        self,
        transport: httpx.AsyncBaseTransport,
        method: str,
        path: str,
        key: Secret,
        params: Mapping[str, str] | None,
        json: Any,
        limits: AttemptLimits,
    ) -> httpx.Response:
        url: httpx.URL | str = self.base_url + path
        if not params:  # parsing the URL is a good part of building a request: most paths repeat, keep them
            cached = self._urls.get(path)
            if cached is None:
                if len(self._urls) >= 512:
                    self._urls.clear()
                cached = self._urls[path] = httpx.URL(url)
            url = cached
        request = httpx.Request(
            method,
            url,
            params=params,
            json=json,
            headers=[*self._headers, (C.AUTH_HEADER, key.reveal())],
            extensions={"timeout": limits.timeouts},
        )
        response = await transport.handle_async_request(request)
        response.request = request
        return response  # its body is read by attempt(), within the size cap

    async def aclose(self) -> None:
        """Close the HTTP client if we made it; a client handed in belongs to its owner."""
        if self.owns_client:
            await self.client.aclose()


def failure_error(outcome: httpx.Response | httpx.TransportError, method: str, path: str) -> IntakeQError:
    """The typed error a caller sees for an attempt's failure (an error status, or no answer)."""
    if isinstance(outcome, httpx.Response):
        return error_from_response(outcome, method, path)
    cls = APITimeoutError if isinstance(outcome, httpx.TimeoutException) else APIConnectionError
    # httpx's text can quote what the server sent (h11 quotes a bad status line), an echoed key included.
    text = redact(str(outcome)[:200], sent_key(outcome))
    # Not chained to `outcome`: httpx's exception holds the request, X-Auth-Key header included, where
    # tools that capture exception objects deeply would find it. Its class and text are in the message.
    return cls(
        method=method,
        path=path,
        message=f"{type(outcome).__name__}: {text}".rstrip(": "),
        maybe_sent=not isinstance(outcome, NOTHING_SENT),
    )
