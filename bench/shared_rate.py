"""Several processes, one key, no budget: the learned rate per process or shared through Redis, before/after.

`python -m bench shared_rate`: the fake (in a process of its own, fresh for every run) refuses more than 10
requests per key in any second (IntakeQ's "10 a minute" sped up 60 times, so its 60 s default pause is 1 s),
with a Retry-After on its 429s. N job processes (2, then 4) each provision their own part of a plan of new
practices through the same partner key, unconfigured (no budget: the rate must be learned), with
`RateLimits(redis_url=...)` (a fresh redis-server per run) or, for contrast, without Redis. Their code is this
checkout's `src/` ("after") or `BEFORE`'s (exported by `git archive`); the two alternate. Every process is told
to start at once (after all have built their client), and each records its requests (wall clock, which the
processes share). Per run it prints:

- wall / bound: from the common start to the last process's end, over the least the limit allows (the partner
  key's successful calls, all processes together, at 10 a second);
- the share of requests answered 429, overall and after the first pause ended (before that the limit is
  unknown to everyone: first contact).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ._common import ROOT, Result
from ._fakeproc import fake_process
from .compare_refs import export

BEFORE = "daff7d5"  # each process learning its own rate (issue 19, first session)
RATE = 10  # per key per second, on the fake
PRACTICES = 30  # all processes together
TARGET = 1.3  # wall / bound, as bench limits' unconfigured target

CHILD = """
import asyncio, json, sys, time
import httpx
import intakeq_partner
from intakeq_partner import PartnerClient, RateLimits
from intakeq_partner.provisioning import provision
from bench._plan import build_plan

url, key, n, src, prefix, redis_url = sys.argv[1:7]
assert intakeq_partner.__file__.startswith(src), intakeq_partner.__file__  # the ref's code, not ours
sends = []  # (start, end, key class, status, Retry-After)

class Recording(httpx.AsyncBaseTransport):
    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
    async def handle_async_request(self, request):
        started = time.time()
        auth = request.headers.get("X-Auth-Key")
        who = "partner" if auth == key else "practice:" + str(hash(auth))
        response = await self.inner.handle_async_request(request)
        sends.append((started, time.time(), who, response.status_code, response.headers.get("Retry-After")))
        return response
    async def aclose(self):
        await self.inner.aclose()

async def main():
    limits = RateLimits(pause_after_429=1.0, redis_url=redis_url or None)
    async with PartnerClient(key, base_url=url, transport=Recording(), limits=limits, max_retries=8) as partner:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.time()
        report = await provision(partner, build_plan(int(n), prefix), concurrency=20)
        ended = time.time()
    failed = [(i.key, i.reason) for i in report.items if i.status.value == "failed"]
    print(json.dumps({"started": started, "ended": ended, "sends": sends, "failed": failed}))

asyncio.run(main())
"""


@dataclass
class Run:
    wall: float
    bound: float
    requests: int
    refused: int
    later_requests: int
    later_refused: int
    failed: int

    @property
    def ratio(self) -> float:
        return self.wall / self.bound

    @property
    def share(self) -> float:
        return self.refused / self.requests

    @property
    def later_share(self) -> float:
        return self.later_refused / self.later_requests if self.later_requests else 0.0

    def line(self) -> str:
        return (
            f"wall / bound {self.ratio:.2f}, 429s {self.refused}/{self.requests} = {self.share:.1%} "
            f"(after the first pause {self.later_refused}/{self.later_requests} = {self.later_share:.1%})"
            + (f", {self.failed} items FAILED" if self.failed else "")
        )


def measure(src: Path, processes: int, redis: bool, practices: int = PRACTICES) -> Run:
    sys.path.insert(0, str(ROOT / "tests"))  # where pytest finds it too: tests/ is not a package
    from redis_server import redis_server  # the test suite's fixture: a real server on a free port

    args = ["--rate-limit", str(RATE), "--rate-window", "1", "--seed", "7", "--log-limit", "0"]
    with fake_process(*args) as fake, redis_server() as server:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
        share = practices // processes
        children = []
        for i in range(processes):
            argv = [fake.base_url, fake.partner_key, str(share), str(src), f"p{i}", server.url if redis else ""]
            children.append(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, *argv],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise SystemExit(f"a run with {src} did not start:\n{child.communicate()[1][-3000:]}")
        for child in children:  # the go, to all at once
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            out, err = child.communicate(timeout=600)
            if child.returncode:
                raise SystemExit(f"a run with {src} failed:\n{err[-3000:]}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    sends = [s for report in reports for s in report["sends"]]
    partner_ok = sum(1 for s in sends if s[2] == "partner" and s[3] != 429)
    ends = [answered + (float(after) if after else 1.0) for _, answered, _, status, after in sends if status == 429]
    first_end = min(ends, default=float("inf"))
    later = [s for s in sends if s[0] >= first_end]
    return Run(
        wall=max(r["ended"] for r in reports) - min(r["started"] for r in reports),
        bound=partner_ok / RATE,
        requests=len(sends),
        refused=sum(1 for s in sends if s[3] == 429),
        later_requests=len(later),
        later_refused=sum(1 for s in later if s[3] == 429),
        failed=sum(len(r["failed"]) for r in reports),
    )


SCENARIOS: list[tuple[str, int, bool]] = [
    ("2 processes, Redis", 2, True),
    ("4 processes, Redis", 4, True),
    ("2 processes, no Redis", 2, False),
]


COST_MODES = ("budgets only", "adaptive, nothing learned", "learned rate")


async def cost_per_slot(redis_url: str, mode: str, calls: int = 2000) -> float:
    """Microseconds one request's way through the pacing costs, Redis on loopback, nothing waiting: the budgets
    alone (`adaptive=False`), adaptive with no rate learned yet, and with a learned rate (a turn asked of Redis
    for every send; the rate is high enough that no send waits)."""
    import httpx

    from intakeq_partner import RateLimits
    from intakeq_partner._pacing import Pacing
    from intakeq_partner._secret import Secret

    key, ok = Secret("bench-cost-key-0123456789"), httpx.Response(200)
    limits = RateLimits(redis_url=redis_url, adaptive=mode != "budgets only")
    pacing = Pacing(limits, clock=time.monotonic, sleep=asyncio.sleep)
    async with pacing.slot(key, "partner", None) as seen:  # connects, loads the scripts
        seen(ok)
    if mode == "learned rate":
        pacing.pace(key, "partner")._cut(1e6, 1.0)  # as if a 429 had taught it a million a second
    started = time.perf_counter()
    for _ in range(calls):
        async with pacing.slot(key, "partner", None) as seen:
            seen(ok)
    elapsed = time.perf_counter() - started
    await pacing.aclose()
    return elapsed / calls * 1e6


def run(practices: int = PRACTICES, before: str = BEFORE, rounds: int = 2) -> Result:
    started = time.perf_counter()
    result = Result("Several processes, one key, no budget")
    sys.path.insert(0, str(ROOT / "tests"))
    from redis_server import redis_server

    with redis_server() as server:
        costs = {mode: [asyncio.run(cost_per_slot(server.url, mode)) for _ in range(3)] for mode in COST_MODES}
    for mode, micros in costs.items():
        result.add(f"cost per request through the pacing, {mode}", f"{statistics.median(micros):.0f} us")
    runs: dict[tuple[str, str], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-shared-rate-") as tmp:
        sources = {"before": export(before, Path(tmp, "before")), "after": ROOT / "src"}
        for r in range(rounds):
            for i, (name, processes, redis) in enumerate(SCENARIOS):
                for ref in ("before", "after") if (i + r) % 2 == 0 else ("after", "before"):
                    found = measure(sources[ref], processes, redis, practices)
                    runs.setdefault((name, ref), []).append(found)
                    line = f"{ref:6} {name}: {found.line()}"
                    result.details.append(line)
                    print("  " + line, file=sys.stderr, flush=True)
    for name, _, redis in SCENARIOS:
        after, before_runs = runs[name, "after"], runs[name, "before"]

        def ratios(found: list[Run]) -> str:
            return " ".join(f"{run.ratio:.2f}" for run in found)

        def shares(found: list[Run]) -> str:
            return " ".join(f"{run.later_share:.1%} ({run.share:.1%})" for run in found)

        worst = max(run.ratio for run in after)
        result.add(
            f"{name}: wall / bound",
            f"{ratios(after)} (before {ratios(before_runs)})",
            f"<= {TARGET:g}" if redis else "(contrast)",
            (worst <= TARGET and not any(run.failed for run in after)) if redis else None,
        )
        result.add(
            f"{name}: 429 share after the first pause (overall)",
            f"{shares(after)}; before {shares(before_runs)}",
            "(information)",
        )
    result.details.append(
        f"{practices} new practices a run split between the processes, concurrency 20 in each, no budget, the fake "
        f"allowing {RATE} requests per key in any second; before = {before}, after = this checkout, alternating; "
        "the machine was shared with other sessions; cost per request: 2,000 sequential requests through "
        "Pacing.slot (no HTTP), one process, Redis on loopback, median of 3"
    )
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(practices=8, rounds=1)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.shared_rate [--practices N] [--only before|after] [--processes N] [--no-redis]`: one run."""
    parser = argparse.ArgumentParser(prog="python -m bench.shared_rate")
    parser.add_argument("--practices", type=int, default=PRACTICES)
    parser.add_argument("--only", choices=["before", "after"], default="after")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-shared-rate-") as tmp:
        src = export(BEFORE, Path(tmp, "before")) if args.only == "before" else ROOT / "src"
        found = measure(src, args.processes, not args.no_redis, args.practices)
        print(f"{args.only}, {args.processes} processes{', no Redis' if args.no_redis else ''}: {found.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
