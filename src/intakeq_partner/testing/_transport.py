"""An in-process transport that behaves like a socket where ``httpx.ASGITransport`` does not."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import ASGIApp

from ._app import ConnectionDropped


class FakeTransport(httpx.AsyncBaseTransport):
    """Runs the fake's ASGI app in-process.

    ``httpx.ASGITransport`` ignores timeouts and re-raises app exceptions; this wrapper enforces the request's
    read timeout (``httpx.ReadTimeout``) and turns a dropped connection into ``httpx.RemoteProtocolError``,
    so a client sees the same exceptions it would see over a network. And as over a network, other tasks run
    while a request is out: the app run inline may answer without ever letting them (Python 3.11's
    ``wait_for`` ran it in a task of its own, which did; 3.12's runs it inline), and concurrent calls would
    then run one after the other on 3.12 and later.
    """

    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self._inner = httpx.ASGITransport(app=app, raise_app_exceptions=True, client=client)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        await asyncio.sleep(0)  # the request is out: other tasks run before its answer comes
        try:
            if read_timeout is None:
                return await self._inner.handle_async_request(request)
            return await asyncio.wait_for(self._inner.handle_async_request(request), read_timeout)
        except TimeoutError:
            raise httpx.ReadTimeout("the fake did not answer within the read timeout", request=request) from None
        except ConnectionDropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None

    async def aclose(self) -> None:
        await self._inner.aclose()
