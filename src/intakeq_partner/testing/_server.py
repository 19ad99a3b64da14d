"""Serving the fake over real loopback sockets with uvicorn, inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._app import ABORT_EXTENSION


class AbortingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a scope extension that can close the socket with no HTTP answer.

    A dropped connection must look to the client like a server that died mid-request; an ASGI app alone can
    only produce a 500 or a truncated body, so the protocol hands the app ``transport.abort``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[ABORT_EXTENSION] = self._abort_connection
            await inner(scope, receive, send)

        self.app = app

    def _abort_connection(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the host process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def make_config(app: Any, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=AbortingH11Protocol,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=1,
    )


@contextlib.asynccontextmanager
async def serve(app: Any, host: str, port: int, on_stop: Any) -> AsyncIterator[str]:
    """Run uvicorn as a task; yield ``http://host:port`` once it listens; stop it on exit."""
    server = EmbeddedServer(make_config(app, host, port))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # surfaces the startup error (for example the port is taken)
                raise RuntimeError("the fake server stopped during startup")
            await asyncio.sleep(0.005)
        bound = server.servers[0].sockets[0].getsockname()
        display_host = f"[{host}]" if ":" in host else host
        yield f"http://{display_host}:{bound[1]}"
    finally:
        on_stop()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
