"""Redis in trouble under load: 4 processes share one key's budget through Redis while Redis is killed, stopped
(SIGSTOP, then SIGCONT), restarted empty, or slowed by a loopback proxy that delays every round trip.

The fake (served over loopback by this process) refuses beyond R requests per second per key with a 429. Each
worker process is a `PartnerClient(limits=RateLimits(partner="R/s", redis_url=..., fallback_share=1/4),
call_timeout=...)`, half of them on each HTTP stack, whose callers call a partner endpoint as fast as the budget
lets them. What is counted: the 429s the fake sent (a fallback must send nothing beyond the budget), the calls
that ended in APITimeoutError (Redis trouble must never make a call overrun its deadline), the other errors,
and each worker's warnings about the shared limiter (one pair per outage at most).

Used by tests/test_redis_trouble.py and `python -m bench endurance`; `python -m bench.redis_trouble worker` is
the worker (keys reach it in its environment, never its arguments).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("kill", "stop", "restart", "latency")
STACKS = ("httpx", "aiohttp")


@dataclass
class Trouble:
    """What the workers saw while Redis was in trouble."""

    kind: str
    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    refused: int = 0  # 429s the fake sent
    down_warnings: list[int] = field(default_factory=list)  # per worker
    up_warnings: list[int] = field(default_factory=list)
    slowest: float = 0.0  # the longest call, seconds
    fallbacks: int = 0

    @property
    def timeouts(self) -> int:
        return self.errors["APITimeoutError"]

    def line(self) -> str:
        return (
            f"{self.kind}: {self.calls} calls, 429s {self.refused}, APITimeoutError {self.timeouts}, "
            f"other errors {dict(self.errors - Counter({'APITimeoutError': self.timeouts})) or 'none'}, "
            f"warnings down/up per worker {self.down_warnings}/{self.up_warnings}, slowest call {self.slowest:.2f} s"
        )


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.down = self.up = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "reachable again" in message:
            self.up += 1
        elif "own budgets" in message:
            self.down += 1


async def _work(tasks: int, call_timeout: float, stack: str) -> dict[str, Any]:
    from intakeq_partner import IntakeQError, PartnerClient, RateLimits

    warnings = _Warnings()
    logging.getLogger("intakeq_partner").addHandler(warnings)
    limits = RateLimits(
        partner=os.environ["TROUBLE_RATE"], redis_url=os.environ["TROUBLE_REDIS_URL"], fallback_share=0.25
    )
    errors: Counter[str] = Counter()
    calls = 0
    slowest = 0.0
    key, base_url = os.environ["TROUBLE_PARTNER_KEY"], os.environ["TROUBLE_BASE_URL"]
    async with PartnerClient(
        key,
        base_url=base_url,
        limits=limits,
        call_timeout=call_timeout,
        http_stack=stack,  # type: ignore[arg-type]
    ) as p:
        assert p.http_stack == stack, p.http_stack
        await p.forms.master()
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        stopped = asyncio.Event()

        async def until_stop() -> None:
            await loop.run_in_executor(None, sys.stdin.readline)  # the parent's stop, or its end (EOF)
            stopped.set()

        async def caller() -> None:
            nonlocal calls, slowest
            while not stopped.is_set():
                started = time.monotonic()
                try:
                    await p.forms.master()
                    calls += 1
                except IntakeQError as exc:
                    errors[type(exc).__name__] += 1
                    if type(exc).__name__ == "RateLimitError":
                        await asyncio.sleep(0.05)
                slowest = max(slowest, time.monotonic() - started)

        await asyncio.gather(until_stop(), *(caller() for _ in range(tasks)))
        fallbacks = getattr(p._transport._pacing.budgets, "fallbacks", 0)
    return {
        "calls": calls,
        "errors": dict(errors),
        "down": warnings.down,
        "up": warnings.up,
        "slowest": slowest,
        "fallbacks": fallbacks,
    }


class DelayProxy:
    """A loopback TCP proxy that holds every chunk `delay` / 2 seconds each way (so each round trip `delay`)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        for pump in (self._pump(reader, up_writer), self._pump(up_reader, writer)):
            task = asyncio.ensure_future(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((time.monotonic() + self.delay / 2, chunk))
            queue.put_nowait((0.0, b""))
            await sender
        except (OSError, asyncio.CancelledError):
            sender.cancel()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


@contextlib.contextmanager
def _redis(port: int | None = None) -> Iterator[Any]:
    sys.path.insert(0, str(ROOT / "tests"))  # where pytest finds it too: tests/ is not a package
    from redis_server import redis_server

    with redis_server(port) as server:
        yield server


async def trouble(
    kind: str,
    *,
    rate: int = 20,
    processes: int = 4,
    tasks: int = 2,
    call_timeout: float = 1.5,
    before: float = 1.5,
    during: float = 2.0,
    after: float = 3.0,
    src: Path | None = None,
) -> Trouble:
    """Run the load for `before` seconds, make Redis trouble of `kind` for `during`, then `after` more seconds
    (`kind` may name several, "stop+latency": each then follows the last one's `after`).

    `src`: the library's source folder to run the workers with (default: the installed one)."""
    from intakeq_partner.testing import FakeIntakeQ, Faults

    outcome = Trouble(kind)
    fake = FakeIntakeQ(seed=5)
    with contextlib.ExitStack() as servers:
        redis = servers.enter_context(_redis())
        async with contextlib.AsyncExitStack() as stack:
            proxy = await stack.enter_async_context(DelayProxy(redis.port))
            base_url = await stack.enter_async_context(fake.serve(port=0))
            env = dict(os.environ, TROUBLE_RATE=f"{rate}/s", TROUBLE_PARTNER_KEY=fake.partner_key)
            env.update(TROUBLE_BASE_URL=base_url, TROUBLE_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0")
            if src is not None:
                env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
            command = [sys.executable, "-m", "bench.redis_trouble", "worker", str(tasks), str(call_timeout)]
            workers = [  # half of them on each HTTP stack
                await asyncio.create_subprocess_exec(
                    *command,
                    STACKS[i % 2],
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                    cwd=ROOT,
                )
                for i in range(processes)
            ]
            stack.push_async_callback(_end, workers)
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 60)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a worker did not start: {line!r}")
            await asyncio.sleep(1.1)  # the warm-up calls leave the one-second window
            fake.reset_stats()
            fake.faults = Faults(rate_limit=rate)
            await _tell(workers, "go")
            await asyncio.sleep(before)
            for i, one in enumerate(kind.split("+")):  # "stop+latency": one outage after the other
                if i:
                    await asyncio.sleep(after)
                if one == "kill":
                    redis.kill()
                    await asyncio.sleep(during)
                elif one == "stop":
                    redis.process.send_signal(signal.SIGSTOP)
                    await asyncio.sleep(during)
                    redis.process.send_signal(signal.SIGCONT)
                elif one == "restart":
                    redis.kill()
                    await asyncio.sleep(during)
                    redis = servers.enter_context(_redis(redis.port))  # empty: nothing of the old windows
                elif one == "latency":
                    proxy.delay = 0.6
                    await asyncio.sleep(during)
                    proxy.delay = 0.0
                elif one != "none":
                    raise ValueError(one)
            await asyncio.sleep(after)
            await _tell(workers, "stop")
            for worker in workers:
                out, _ = await asyncio.wait_for(worker.communicate(), 120)
                if worker.returncode != 0:
                    raise RuntimeError(f"a worker failed with exit code {worker.returncode}")
                report = json.loads(out.decode().strip().splitlines()[-1])
                outcome.calls += report["calls"]
                outcome.errors.update(report["errors"])
                outcome.down_warnings.append(report["down"])
                outcome.up_warnings.append(report["up"])
                outcome.slowest = max(outcome.slowest, report["slowest"])
                outcome.fallbacks += report["fallbacks"]
            outcome.refused = fake.stats.statuses[429]
    return outcome


async def _tell(workers: list[asyncio.subprocess.Process], what: str) -> None:
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(f"{what}\n".encode())
        await worker.stdin.drain()


async def _end(workers: list[asyncio.subprocess.Process]) -> None:
    for worker in workers:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        print(json.dumps(asyncio.run(_work(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))), flush=True)
    else:
        for kind in sys.argv[1:] or KINDS:
            print(asyncio.run(trouble(kind)).line(), flush=True)
