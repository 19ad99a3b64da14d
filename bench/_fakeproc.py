"""The fake IntakeQ in a child process (its own core), and an httpx transport that counts what is sent."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from intakeq_partner import _constants as C


@dataclass
class FakeProcess:
    base_url: str
    partner_key: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the fake's process has used so far (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def fake_process(*args: str) -> Iterator[FakeProcess]:
    """Run `python -m intakeq_partner.testing --port 0 ARGS...` and yield its URL and partner key."""
    command = [sys.executable, "-m", "intakeq_partner.testing", "--port", "0", "--log-level", "warning", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = key = ""
        while not (url and key):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the fake server exited early ({proc.wait()})")
            if line.startswith("Fake IntakeQ at "):
                url = line.removeprefix("Fake IntakeQ at ").strip()
            elif line.startswith("Partner key: "):
                key = line.removeprefix("Partner key: ").strip()
        yield FakeProcess(url, key, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts every request sent (each attempt, retries included) by method and status."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, max_connections: int | None = None) -> None:
        connections = max_connections or C.DEFAULT_MAX_CONCURRENCY
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.inner = inner or httpx.AsyncHTTPTransport(limits=limits)
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int | str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.method] += 1
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self.statuses[type(exc).__name__] += 1
            raise
        self.statuses[response.status_code] += 1
        return response

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    async def aclose(self) -> None:
        await self.inner.aclose()
