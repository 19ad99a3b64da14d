"""The provisioning job under IntakeQ's per-key limit, before and after adaptive pacing, side by side.

`python -m bench limits`: the fake (in a process of its own, fresh for every run) refuses more than 10
requests per key in any second (IntakeQ's "10 a minute", sped up 60 times, so its 60 s default pause becomes
1 s), with or without a Retry-After on its 429s. The job provisions a plan of new practices through a client
whose code is this checkout's `src/` ("after") or `BEFORE`'s (exported by `git archive`), each run a child
process, the two alternating. Scenarios: the client unconfigured (it must find the limit) and configured with
the server's budget, each with and without Retry-After; then 5% sporadic 429s (Retry-After: 1) on top of the
limit, against the same client without them. Per run it prints:

- wall / bound: the job's wall time over the least the limit allows (the partner key's successful calls at
  10 a second: that key carries 4 calls a practice, each practice key 3);
- the share of requests answered 429;
- the largest burst: the most requests one key sent in the 100 ms after one of its pauses ended (a pause
  ends the 429's Retry-After, or the 1 s default, after its answer).
"""

from __future__ import annotations

import argparse
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

BEFORE = "daff7d5"  # adaptive pacing without slow start (issue 19; fcd877f was the code before pacing)
ROUNDS = 3
RATE = 10  # per key per second, on the fake
PRACTICES = 30
TARGETS = {"unconfigured": (1.3, 0.02), "configured": (1.1, 0.0)}
SPORADIC_TARGET = 2.0
FAST_PRACTICES = 200  # the fast-server run: no limit, so the job is short; more practices to measure it
FAST_TARGET = 1.1  # slow start's cost on a server with no limit: wall time after / before

CHILD = """
import asyncio, json, sys, time
import httpx
import intakeq_partner
from intakeq_partner import PartnerClient, RateLimits
from intakeq_partner.provisioning import provision
from bench._plan import build_plan

url, key, n, src, configured = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
assert intakeq_partner.__file__.startswith(src), intakeq_partner.__file__  # the ref's code, not ours
sends = []  # (start, key class, status, Retry-After)

class Recording(httpx.AsyncBaseTransport):
    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
    async def handle_async_request(self, request):
        started = time.monotonic()
        auth = request.headers.get("X-Auth-Key")
        who = "partner" if auth == key else "practice:" + str(hash(auth))
        response = await self.inner.handle_async_request(request)
        sends.append((started, time.monotonic(), who, response.status_code, response.headers.get("Retry-After")))
        return response
    async def aclose(self):
        await self.inner.aclose()

async def main():
    rates = {"partner": "RATE/s", "practice": "RATE/s"} if configured else {}
    limits = RateLimits(pause_after_429=1.0, **rates)
    async with PartnerClient(key, base_url=url, transport=Recording(), limits=limits, max_retries=8) as partner:
        started = time.monotonic()
        report = await provision(partner, build_plan(n), concurrency=20)
        wall = time.monotonic() - started
    failed = [(i.key, i.reason) for i in report.items if i.status.value == "failed"]
    print(json.dumps({"wall": wall, "sends": sends, "failed": failed}))

asyncio.run(main())
""".replace("RATE", str(RATE))


@dataclass
class Run:
    wall: float
    bound: float
    requests: int
    refused: int
    burst: int
    failed: list[str]
    first_contact: int
    """429s of requests sent before the first pause ended (the limit still unknown)."""

    @property
    def later_share(self) -> float:
        """The 429 share of requests sent after the first pause ended."""
        later = self.requests - self.first_contact_requests
        return (self.refused - self.first_contact) / later if later else 0.0

    first_contact_requests: int = 0

    @property
    def ratio(self) -> float:
        return self.wall / self.bound

    @property
    def share(self) -> float:
        return self.refused / self.requests


def measure(src: Path, practices: int, configured: bool, fake_args: list[str]) -> Run:
    args = ["--rate-limit", str(RATE), "--rate-window", "1", "--seed", "7", "--log-limit", "0", *fake_args]
    with fake_process(*args) as fake:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
        argv = [fake.base_url, fake.partner_key, str(practices), str(src), "1" if configured else "0"]
        out = subprocess.run([sys.executable, "-c", CHILD, *argv], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"run with {src} failed:\n{out.stderr[-3000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    sends = data["sends"]
    partner_ok = sum(1 for s in sends if s[2] == "partner" and s[3] != 429)
    ends: list[tuple[str, float]] = []
    for _, answered, who, status, retry_after in sends:
        if status == 429:
            ends.append((who, answered + (float(retry_after) if retry_after else 1.0)))
    # First contact: until the first pause ends the limit is unknown, and requests already on their way when
    # the first 429 came back meet it too.
    first_end = min((end for _, end in ends), default=float("inf"))
    early = [s for s in sends if s[0] < first_end]
    burst = 0
    for who, end in ends:
        burst = max(burst, sum(1 for s in sends if s[2] == who and end <= s[0] < end + 0.1))
    return Run(
        wall=data["wall"],
        bound=partner_ok / RATE,
        requests=len(sends),
        refused=sum(1 for s in sends if s[3] == 429),
        burst=burst,
        failed=[f"{e}: {r}" for e, r in data["failed"]],
        first_contact=sum(1 for s in early if s[3] == 429),
        first_contact_requests=len(early),
    )


def export(ref: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


SCENARIOS: list[tuple[str, bool, list[str]]] = [
    ("unconfigured, Retry-After", False, []),
    ("unconfigured, no Retry-After", False, ["--rate-limit-silent"]),
    ("configured, Retry-After", True, []),
    ("configured, no Retry-After", True, ["--rate-limit-silent"]),
    ("unconfigured, Retry-After, 5% sporadic 429s", False, ["--p429", "0.05", "--retry-after", "1"]),
    ("configured, Retry-After, 5% sporadic 429s", True, ["--p429", "0.05", "--retry-after", "1"]),
    (FAST := "unconfigured, no limit (a fast server)", False, ["--rate-limit", "0"]),
]


def _spread(values: list[float], fmt: str) -> str:
    """The median, and the range when there are several values."""
    median = format(statistics.median(values), fmt)
    return median if len(values) == 1 else f"{median} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def run(practices: int = PRACTICES, before: str = BEFORE, rounds: int = ROUNDS) -> Result:
    started = time.perf_counter()
    result = Result("Throughput under a per-key limit")
    runs: dict[tuple[str, str], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        sources = {"before": export(before, Path(tmp, "before")), "after": ROOT / "src"}
        for r in range(rounds):
            for i, (name, configured, fake_args) in enumerate(SCENARIOS):
                for ref in ("before", "after") if (i + r) % 2 == 0 else ("after", "before"):
                    size = FAST_PRACTICES * practices // PRACTICES if name == FAST else practices
                    found = measure(sources[ref], size, configured, fake_args)
                    runs.setdefault((name, ref), []).append(found)
                    line = (
                        f"round {r + 1}, {ref:6} {name}: wall {found.wall:.1f} s / bound {found.bound:.1f} s = "
                        f"{found.ratio:.2f}, 429s {found.refused}/{found.requests} = {found.share:.1%} "
                        f"({found.first_contact} at first contact, then {found.later_share:.1%}), largest burst "
                        f"after a pause {found.burst}"
                        + (f", {len(found.failed)} items FAILED, e.g. {found.failed[0]}" if found.failed else "")
                    )
                    result.details.append(line)
                    print("  " + line, file=sys.stderr, flush=True)
    for name, configured, _ in SCENARIOS:
        before_runs, after_runs = runs[name, "before"], runs[name, "after"]
        failed = any(run.failed for run in after_runs)
        if name == FAST:
            # Each round's runs side by side: what slow start costs where there is no limit to find.
            cost = [a.wall / b.wall for a, b in zip(after_runs, before_runs, strict=True)]
            result.add(
                f"{name}: wall after / before",
                f"{_spread(cost, '.2f')} ({_spread([run.wall for run in after_runs], '.2f')} s against "
                f"{_spread([run.wall for run in before_runs], '.2f')} s)",
                f"<= {FAST_TARGET:g}",
                statistics.median(cost) <= FAST_TARGET and not failed,
            )
            continue
        if "sporadic" in name:
            clean = name.split(", 5%")[0]
            # Each round's sporadic run over the same round's fault-free run of the same code.
            slow = [a.wall / c.wall for a, c in zip(after_runs, runs[clean, "after"], strict=True)]
            slow_before = [b.wall / c.wall for b, c in zip(before_runs, runs[clean, "before"], strict=True)]
            result.add(
                f"{name}: wall / fault-free wall",
                f"{_spread(slow, '.2f')} (before {_spread(slow_before, '.2f')})",
                f"<= {SPORADIC_TARGET:g}",
                statistics.median(slow) <= SPORADIC_TARGET and not failed,
            )
        ratio_target, share_target = TARGETS["configured" if configured else "unconfigured"]
        if "sporadic" not in name:
            ratios = [run.ratio for run in after_runs]
            result.add(
                f"{name}: wall / bound",
                f"{_spread(ratios, '.2f')} (before {_spread([run.ratio for run in before_runs], '.2f')})",
                f"<= {ratio_target:g}",
                statistics.median(ratios) <= ratio_target and not failed,
            )
        shares = [run.share for run in after_runs]
        result.add(
            f"{name}: 429 share overall (after the first pause)",
            f"{_spread(shares, '.1%')} ({_spread([run.later_share for run in after_runs], '.1%')}); before "
            f"{_spread([run.share for run in before_runs], '.1%')} "
            f"({_spread([run.later_share for run in before_runs], '.1%')})",
            "(the sporadic ones)" if "sporadic" in name else f"<= {share_target:.0%}",
            None if "sporadic" in name else statistics.median(shares) <= share_target,
            note=f"first contact: {_spread([float(run.first_contact) for run in after_runs], '.0f')} x 429 "
            f"(before {_spread([float(run.first_contact) for run in before_runs], '.0f')})",
        )
        result.add(
            f"{name}: largest burst after a pause",
            f"{_spread([float(run.burst) for run in after_runs], '.0f')} "
            f"(before {_spread([float(run.burst) for run in before_runs], '.0f')})",
            "(information)",
        )
    result.details.append(
        f"{practices} new practices a run, concurrency 20, the fake allowing {RATE} requests per key in any second; "
        f"{rounds} rounds, medians (range); before = {before}, after = this checkout, alternating, each run a process "
        "of its own; the machine was shared with other sessions"
    )
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(practices=6, rounds=1)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.limits [--practices N] [--only before|after] [--scenario TEXT]`: single runs, e.g. longer."""
    parser = argparse.ArgumentParser(prog="python -m bench.limits")
    parser.add_argument("--practices", type=int, default=PRACTICES)
    parser.add_argument("--only", choices=["before", "after"], default="after")
    parser.add_argument("--scenario", default="", help="run the scenarios whose name contains this text")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        src = export(BEFORE, Path(tmp, "before")) if args.only == "before" else ROOT / "src"
        for name, configured, fake_args in SCENARIOS:
            if args.scenario in name:
                found = measure(src, args.practices, configured, fake_args)
                print(
                    f"{args.only} {name}, {args.practices} practices: wall {found.wall:.2f} s, "
                    f"/ bound {found.ratio:.2f}, 429s "
                    f"{found.refused}/{found.requests} = {found.share:.1%} ({found.first_contact} at first contact, "
                    f"then {found.later_share:.1%}), largest burst after a pause {found.burst}, "
                    f"{len(found.failed)} failed",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
