"""Serving the fake over real loopback sockets with uvicorn, inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
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


def make_config(app: Any, host: str, port: int, log_level: str | None = None) -> uvicorn.Config:
    """Embedded use (log_level None) leaves the host's logging configuration alone; the CLI sets it up."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=AbortingH11Protocol,
        lifespan="off",
        log_config=uvicorn.config.LOGGING_CONFIG if log_level else None,
        log_level=log_level,
        access_log=log_level is not None and log_level.lower() in ("debug", "trace"),
        timeout_graceful_shutdown=1,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0 = a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Poll until uvicorn listens (it offers no event for that); surface a failed start."""
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the fake server stopped during startup")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def serve(app: Any, host: str, port: int, on_stop: Any) -> AsyncIterator[str]:
    """Run uvicorn as a task; yield ``http://host:port`` once it listens; stop it on exit."""
    sock = bind(host, port)  # binding here turns "port taken" into an OSError instead of uvicorn's sys.exit
    server = EmbeddedServer(make_config(app, host, port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_started(server, task)
        display_host = f"[{host}]" if ":" in host else host
        yield f"http://{display_host}:{sock.getsockname()[1]}"
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
        except Exception:  # already reported by the startup loop above
            pass
        finally:
            sock.close()
