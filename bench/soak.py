"""`make soak`: provision 2,000 practices through 5% mixed faults until the account converges, on each stack.

Faults (seeded): 429 with and without Retry-After, 500/502/503, dropped connections, hangs past a short read
timeout, and malformed 200s, about 5% of requests in all (`--faults drops`: 5% dropped connections only, the
case where mistaking "maybe sent" for "not sent" duplicates creates). The fake runs over loopback so that each
HTTP stack meets real broken sockets (`--stack in-process` uses the in-process transport instead). The job is
re-run until its report is clean, then the fake's state is checked: every planned item exists exactly once
(no duplicates, nothing lost).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from typing import Any

from intakeq_partner import PartnerClient, RateLimits
from intakeq_partner.provisioning import Plan, provision
from intakeq_partner.testing import FakeIntakeQ, Faults

from ._plan import build_plan

MIXED = Faults(
    p429=0.01,
    p5xx=0.015,
    p_drop=0.01,
    p_hang=0.005,
    p_malformed=0.01,
    p_retry_after_missing=0.5,
    retry_after=1,
    hang_seconds=5.0,
)
DROPS = Faults(p_drop=0.05)
FAULTS = {"mixed": MIXED, "drops": DROPS}
STACKS = ("aiohttp", "httpx", "in-process")


def check(fake: FakeIntakeQ, plan: Plan) -> list[str]:
    """Duplicates and missing items, as readable lines (empty: the account matches the plan)."""
    problems: list[str] = []
    by_ext = Counter(p.external_id for p in fake.practices)
    for spec in plan.practices:
        count = by_ext.get(spec.external_id, 0)
        if count != 1:
            problems.append(f"practice {spec.external_id}: {count} copies")
            continue
        practice = fake.practice(spec.external_id)
        doctors = Counter(p.external_id for p in practice.practitioners.values())
        helpers = Counter(a.external_id for a in practice.assistants.values())
        forms = Counter((f.name, f.type) for f in practice.forms.values() if f.type != "ConsentForm")
        for p in spec.practitioners:
            if doctors[p.external_id] != 1:
                problems.append(f"practitioner {p.external_id}: {doctors[p.external_id]} copies")
        for a in spec.assistants:
            if helpers[a.external_id] != 1:
                problems.append(f"assistant {a.external_id}: {helpers[a.external_id]} copies")
        for f in spec.forms:
            copies = sum(n for (name, _), n in forms.items() if name == f.name)
            if copies != 1:
                problems.append(f"form {f.name!r} in {spec.external_id}: {copies} copies")
    return problems


async def soak(n: int, max_runs: int, seed: int, stack: str, faults: str) -> int:
    fake = FakeIntakeQ(seed=seed, faults=FAULTS[faults], log_limit=1000)
    plan = build_plan(n, prefix="soak")
    options: dict[str, Any] = {"timeout": 1.0, "max_retries": 3, "initial_delay": 0.05, "max_delay": 1.0}
    # A 429 without Retry-After pauses its key for everyone: here for as long as the fake's own Retry-After.
    options["limits"] = RateLimits(pause_after_429=FAULTS[faults].retry_after)
    started = time.perf_counter()
    async with contextlib.AsyncExitStack() as resources:
        if stack == "in-process":
            base_url, options["transport"] = fake.base_url, fake.transport()
        else:
            base_url, options["http_stack"] = await resources.enter_async_context(fake.serve()), stack
        p = await resources.enter_async_context(PartnerClient(fake.partner_key, base_url=base_url, **options))
        print(f"{stack} stack ({p.http_stack}), {faults} faults, {n:,} practices", flush=True)
        for run in range(1, max_runs + 1):
            report = await provision(p, plan, concurrency=50)
            counts = {status.value: count for status, count in report.counts.items() if count}
            print(f"run {run}: {report.elapsed:.1f} s, {counts}", flush=True)
            if report.ok:
                break
    injected = dict(fake.stats.faults)
    calls = sum(fake.stats.calls.values())
    print(f"{calls:,} requests, faults injected: {injected}")
    problems = check(fake, plan)
    print(
        f"converged after {run} run(s) in {time.perf_counter() - started:.0f} s: " if report.ok else "NOT converged: "
    )
    print(f"{n:,} practices checked: {len(problems)} problems (duplicates or missing)")
    for line in problems[:20]:
        print("  " + line)
    return 0 if report.ok and not problems else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=2000)
    parser.add_argument("--max-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--stack", choices=[*STACKS, "all"], default="all", help="all: aiohttp, then httpx")
    parser.add_argument("--faults", choices=sorted(FAULTS), default="mixed")
    args = parser.parse_args(argv)
    stacks = ["aiohttp", "httpx"] if args.stack == "all" else [args.stack]
    failed = [s for s in stacks if asyncio.run(soak(args.practices, args.max_runs, args.seed, s, args.faults))]
    if failed:
        print(f"FAILED on: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
