"""Many processes, one budget: 4 worker processes share per-key budgets through Redis against a rate-limited fake.

The fake (served over loopback by this process) refuses beyond R requests per second per key (a sliding
window) with a 429. Four worker processes, each a `PartnerClient(limits=RateLimits(partner="R/s",
practice="R/s", redis_url=...))`, call a partner endpoint and one practice's endpoint as fast as their budgets
let them. The figures: each key's achieved rate over R (target >= 90%) and the 429s the fake sent (target 0).
For contrast, the same load with every process keeping its own in-process budget (no Redis).

`python -m bench.shared_budget worker` is the worker; keys reach it in its environment, never its arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from intakeq_partner import IntakeQError, PartnerClient, RateLimits
from intakeq_partner._budgets import Budgets, Scope, budget_id
from intakeq_partner._redis import RedisBudgets
from intakeq_partner._secret import Secret
from intakeq_partner.testing import FakeIntakeQ, Faults

from ._common import ROOT, Result

RATE = 40
PROCESSES = 4
TARGET_SHARE = 0.90
PRACTICE = "bench-shared"


@dataclass
class Outcome:
    """What a run of the workers achieved, per key, and what the fake refused."""

    rate: int
    seconds: float
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    fallbacks: int = 0

    def share(self, scope: str) -> float:
        return self.calls[scope] / (self.rate * self.seconds)


async def _work(tasks: int) -> dict[str, object]:
    """One worker process: `tasks` callers per key, from the parent's go until its stop.

    It reports when it started and stopped and when each call finished (wall clock, which the processes
    share), so that the parent counts only the calls inside the interval in which every worker was running:
    a busy machine that wakes one worker late shortens the interval instead of lowering the share.
    """
    limits = RateLimits(
        partner=os.environ["BENCH_RATE"],
        practice=os.environ["BENCH_RATE"],
        redis_url=os.environ.get("BENCH_REDIS_URL") or None,
    )
    calls: dict[str, list[float]] = {"partner": [], "practice": []}
    errors: Counter[str] = Counter()
    key, base_url = os.environ["BENCH_PARTNER_KEY"], os.environ["BENCH_BASE_URL"]
    async with PartnerClient(key, base_url=base_url, limits=limits) as p:
        if os.environ.get("BENCH_LIMITER") == "limits":  # the comparison: the `limits` package in our place
            p._transport._pacing.budgets = LimitsBudgets(limits)
        clinic = p.practice(PRACTICE)
        await clinic.practitioners.list()  # fetches the practice key before the load starts
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        started = time.time()
        print("started", flush=True)
        stopped: list[float] = []

        async def until_stop() -> None:
            await loop.run_in_executor(None, sys.stdin.readline)  # the parent's stop, or its end (EOF)
            stopped.append(time.time())

        async def caller(scope: str) -> None:
            while not stopped:
                try:
                    if scope == "partner":
                        await p.forms.master()
                    else:
                        await clinic.practitioners.list()
                    calls[scope].append(time.time())
                except IntakeQError as exc:
                    errors[type(exc).__name__] += 1

        callers = [caller(scope) for scope in ("partner", "practice") for _ in range(tasks)]
        await asyncio.gather(until_stop(), *callers)
        fallbacks = getattr(p._transport._pacing.budgets, "fallbacks", 0)
    report = {"started": started, "stopped": stopped[0], "calls": calls, "errors": dict(errors)}
    return {**report, "fallbacks": fallbacks}


class LimitsBudgets:
    """The `limits` package's moving window on Redis in place of our script: for comparison only.

    `hit` records a request when it starts; a caller that finds the window full sleeps until the window's
    reset time and tries again (one caller per key and process at a time, as ours). It has no 429 pause.
    """

    def __init__(self, limits: RateLimits) -> None:
        from limits import RateLimitItemPerSecond
        from limits.aio.strategies import MovingWindowRateLimiter
        from limits.storage import storage_from_string

        assert limits.redis_url is not None and len(limits.partner) == 1 and limits.partner[0].per == 1
        self._limiter = MovingWindowRateLimiter(
            storage_from_string("async+" + limits.redis_url, implementation="redispy")
        )
        self._item = RateLimitItemPerSecond(limits.partner[0].count)
        self._turns: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def slot(self, key: Secret, scope: Scope, deadline: float | None) -> AsyncIterator[None]:
        ident = f"{scope}:{budget_id(key)}"
        async with self._turns.setdefault(ident, asyncio.Lock()):
            while not await self._limiter.hit(self._item, ident):
                stats = await self._limiter.get_window_stats(self._item, ident)
                await asyncio.sleep(max(0.001, stats.reset_time - time.time()))
        yield

    async def pause(self, key: Secret, scope: Scope, retry_after: float | None) -> float:
        return 0.0 if retry_after is None else retry_after

    async def aclose(self) -> None:
        return None


def limits_installed() -> bool:
    return importlib.util.find_spec("limits") is not None


async def cost_per_call(budgets: Budgets, calls: int = 2000) -> float:
    """Microseconds one slot costs when the budget has room (ours: acquire + release; `limits`: one hit)."""
    key = Secret("bench-cost-key-0123456789")
    async with budgets.slot(key, "partner", None):  # connects, loads the script
        pass
    started = time.perf_counter()
    for _ in range(calls):
        async with budgets.slot(key, "partner", None):
            pass
    elapsed = time.perf_counter() - started
    await budgets.aclose()
    return elapsed / calls * 1e6


async def measure(
    redis_url: str | None,
    *,
    rate: int = RATE,
    seconds: float = 4.0,
    processes: int = PROCESSES,
    tasks: int = 4,
    limiter: str = "ours",
) -> Outcome:
    """Run `processes` workers against a fake limiting each key to `rate`/s; shared budgets when `redis_url`."""
    fake = FakeIntakeQ(seed=3)
    async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport()) as partner:
        await partner.practices.create(
            practice_name="Shared", first_name="Ann", last_name="Lee", email="a@ex.com", external_practice_id=PRACTICE
        )
    outcome = Outcome(rate, seconds)
    async with fake.serve(port=0) as base_url:
        env = dict(os.environ, BENCH_RATE=f"{rate}/s", BENCH_PARTNER_KEY=fake.partner_key, BENCH_BASE_URL=base_url)
        env["BENCH_REDIS_URL"] = redis_url or ""
        env["BENCH_LIMITER"] = limiter
        command = [sys.executable, "-m", "bench.shared_budget", "worker", str(tasks)]
        workers = [
            await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
            )
            for _ in range(processes)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 60)
                if line.strip() != b"ready":
                    raise RuntimeError(f"a worker did not start: {line!r}")
            await asyncio.sleep(1.1)  # the warm-up calls leave every one-second window
            fake.reset_stats()
            fake.faults = Faults(rate_limit=rate)  # only now: the workers' key fetches were not part of the load
            for signal in ("go", "stop"):
                for worker in workers:
                    assert worker.stdin is not None
                    worker.stdin.write(f"{signal}\n".encode())
                    await worker.stdin.drain()
                if signal == "go":
                    for worker in workers:
                        assert worker.stdout is not None
                        line = await asyncio.wait_for(worker.stdout.readline(), 60)
                        if line.strip() != b"started":
                            raise RuntimeError(f"a worker did not start the load: {line!r}")
                    # Every worker has started: from now on all run together for at least `seconds`.
                    await asyncio.sleep(seconds)
            reports = []
            for worker in workers:
                out, _ = await asyncio.wait_for(worker.communicate(), seconds + 120)
                if worker.returncode != 0:
                    raise RuntimeError(f"a worker failed with exit code {worker.returncode}")
                reports.append(json.loads(out.decode().strip().splitlines()[-1]))
            # Only the interval in which every worker was running counts (at least `seconds` long, see above).
            began = max(report["started"] for report in reports)
            ended = min(report["stopped"] for report in reports)
            outcome.seconds = ended - began
            for report in reports:
                for scope, ends in report["calls"].items():
                    outcome.calls[scope] += sum(began <= end < ended for end in ends)
                outcome.errors.update(report["errors"])
                outcome.fallbacks += report["fallbacks"]
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        outcome.refused = fake.stats.statuses[429]
    return outcome


def run(seconds: float = 5.0) -> Result:
    sys.path.insert(0, str(ROOT / "tests"))  # where pytest finds it too: tests/ is not a package
    from redis_server import redis_server  # the test suite's fixture: a real server on a free port

    started = time.perf_counter()
    result = Result("Shared budget on Redis")
    with redis_server() as server:
        shared = asyncio.run(measure(server.url, seconds=seconds))
        unlimited = RateLimits(partner="1000000/s", redis_url=server.url)
        ours = asyncio.run(cost_per_call(RedisBudgets(unlimited, clock=time.monotonic, sleep=asyncio.sleep)))
        if limits_installed():
            package = asyncio.run(measure(server.url, seconds=seconds, limiter="limits"))
            theirs = asyncio.run(cost_per_call(LimitsBudgets(unlimited)))
    alone = asyncio.run(measure(None, seconds=seconds))
    worst = min(shared.share("partner"), shared.share("practice"))
    result.add(
        f"{PROCESSES} processes on Redis: achieved / budget (worst key)", f"{worst:.1%}", f">= {TARGET_SHARE:.0%}",
        worst >= TARGET_SHARE,
    )  # fmt: skip
    result.add(f"{PROCESSES} processes on Redis: 429s the fake sent", str(shared.refused), "0", shared.refused == 0)
    result.add("shared limiter cost per call (Lua script: acquire + release)", f"{ours:.0f} us")
    runs = [("our Lua script", shared), ("each process its own budget", alone)]
    result.add(f"{PROCESSES} processes, each its own budget: 429s the fake sent", str(alone.refused), note="contrast")
    if limits_installed():
        runs.insert(1, ("the limits package (moving window)", package))
        worst_theirs = min(package.share("partner"), package.share("practice"))
        result.add(
            "limits package instead: 429s sent, achieved / budget", f"{package.refused}, {worst_theirs:.1%}",
            note="contrast",
        )  # fmt: skip
        result.add("limits package cost per call (one moving-window hit)", f"{theirs:.0f} us", note="contrast")
    for name, outcome in runs:
        result.details.append(
            f"{name}: partner {outcome.calls['partner']} calls ({outcome.share('partner'):.1%} of {RATE}/s x "
            f"{outcome.seconds:.2f} s with all workers running), practice {outcome.calls['practice']} "
            f"({outcome.share('practice'):.1%}), "
            f"429s sent {outcome.refused}, errors {dict(outcome.errors) or 'none'}, fallbacks {outcome.fallbacks}"
        )
    result.details.append(
        f"{PROCESSES} worker processes x 4 callers per key; the fake limits each key to {RATE} requests per second; "
        "cost per call: 2,000 sequential slots on a budget with room, one process, Redis on loopback"
    )
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(seconds=2.0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        print(json.dumps(asyncio.run(_work(int(sys.argv[2])))), flush=True)
    else:
        print(run())
