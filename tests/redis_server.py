"""A real redis-server on a free loopback port, for the shared-limiter tests and benchmark.

The server keeps nothing on disk and is killed when the block ends (or earlier, by `kill()`, to test what
happens when Redis goes away mid-run). Without a redis-server binary this fails with a message saying how to
get one (`make test` installs it); `INTAKEQ_SKIP_REDIS_TESTS=1` turns that into a skip, knowingly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

MISSING = (
    "redis-server is not installed: `make test` installs it (scripts/ensure-redis-server), or install it yourself "
    "(apt-get install redis-server); set INTAKEQ_SKIP_REDIS_TESTS=1 to skip these tests knowingly"
)


class RedisMissing(RuntimeError):
    pass


@dataclass
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """Start redis-server on 127.0.0.1 and `port` (default: a free one); kill it afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisMissing(MISSING)
    wanted = port
    for _ in range(3):  # a port found free can be taken by someone else before the server binds it
        port = wanted or _free_port()
        with tempfile.TemporaryDirectory() as folder:
            command = [
                binary,
                *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--dir", folder, "--loglevel", "warning"),
            ]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            server = RedisServer(f"redis://127.0.0.1:{port}/0", port, process)
            try:
                for _ in range(200):  # up to ~10 s on a loaded machine
                    if process.poll() is not None or _answers(port):
                        break
                    time.sleep(0.05)
                if process.poll() is None and _answers(port):
                    yield server
                    return
            finally:
                server.kill()
    raise RuntimeError("redis-server did not start on a free loopback port (3 tries)")


def skip_knowingly() -> bool:
    return os.environ.get("INTAKEQ_SKIP_REDIS_TESTS") == "1"
