"""Provisioning throughput: `provision()` of N practices against the fake with 20 ms latency, concurrency 50.

Each practice has 2 practitioners, 1 assistant and 2 copied master forms. The fake runs in a child process
(`python -m intakeq_partner.testing`) so that it has a core of its own, as a real server would. The client
runs with its defaults (its own sharded connection pool, `_pool.py`); every request it sends is counted by an
httpx request hook. The latency bound is what the calls the job
actually made would take if nothing but the injected latency cost time: calls x latency / concurrency.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time

import httpx

from intakeq_partner import PartnerClient
from intakeq_partner._pool import ShardedTransport
from intakeq_partner.provisioning import provision

from ._common import Result
from ._fakeproc import CountingTransport, fake_process
from ._plan import build_plan

LATENCY = 0.02
CONCURRENCY = 50
TARGET = 1.2


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(base_url: str, key: str, n: int, *, one_pool: bool = False) -> dict[str, float]:
    """The job with the client's defaults (its sharded pool); `one_pool`: through one stock httpx pool."""
    plan = build_plan(n)
    counting = CountingTransport() if one_pool else None
    async with PartnerClient(key, base_url=base_url, transport=counting) as partner:
        calls = 0

        async def count(request: httpx.Request) -> None:
            nonlocal calls
            calls += 1

        if counting is None:  # count on the client the defaults built, without replacing its transport
            partner._transport._client.event_hooks["request"].append(count)
        cpu, start = _cpu(), time.perf_counter()
        report = await provision(partner, plan, concurrency=CONCURRENCY)
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    assert report.ok, report.failures[:3]
    total = counting.total if counting is not None else calls
    return {"elapsed": elapsed, "cpu": cpu, "calls": total, "items": len(report.items)}


async def _bare(base_url: str, key: str, calls: int, *, sharded: bool = False) -> dict[str, float]:
    """The reference: bare httpx, same pool size and concurrency, `calls` cheap GETs (what httpx alone costs);
    `sharded`: through our sharded pool instead of httpx's one pool of 64."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    transport = ShardedTransport(64) if sharded else None
    async with httpx.AsyncClient(
        base_url=base_url, headers={"X-Auth-Key": key}, limits=limits, transport=transport
    ) as client:
        left = calls

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                json.loads((await client.get("/api/partner/masterForms")).content)

        cpu, start = _cpu(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return {"elapsed": time.perf_counter() - start, "cpu": _cpu() - cpu, "calls": calls}


def run(n: int = 1000) -> Result:
    started = time.perf_counter()
    result = Result("Provisioning throughput")
    with fake_process("--latency", str(LATENCY), "--seed", "7") as fake:
        got = asyncio.run(_run(fake.base_url, fake.partner_key, n))
        bare = asyncio.run(_bare(fake.base_url, fake.partner_key, min(int(got["calls"]), 2000)))
        sharded = asyncio.run(_bare(fake.base_url, fake.partner_key, min(int(got["calls"]), 2000), sharded=True))
    calls = got["calls"]
    bound = calls * LATENCY / CONCURRENCY
    ratio = got["elapsed"] / bound
    result.add(f"{n:,} practices: wall time / latency bound", f"{ratio:.2f}", f"<= {TARGET}", ratio <= TARGET)
    result.add("calls per practice", f"{(calls - 2) / n:.2f}", "(information)", note="+2 per run: master forms, list")
    result.add("client CPU per call", f"{got['cpu'] / calls * 1e3:.2f} ms", "(information)")
    bare_ratio = bare["elapsed"] / (bare["calls"] * LATENCY / CONCURRENCY)
    result.add("reference: bare httpx, same concurrency: wall / bound", f"{bare_ratio:.2f}", "(information)")
    result.add("reference: bare httpx CPU per call", f"{bare['cpu'] / bare['calls'] * 1e3:.2f} ms", "(information)")
    sharded_ratio = sharded["elapsed"] / (sharded["calls"] * LATENCY / CONCURRENCY)
    result.add("reference: bare httpx on our sharded pool: wall / bound", f"{sharded_ratio:.2f}", "(information)")
    result.add(
        "reference: bare httpx on our sharded pool: CPU per call",
        f"{sharded['cpu'] / sharded['calls'] * 1e3:.2f} ms",
        "(information)",
    )
    result.details += [
        f"{n:,} practices, {got['items']:,} items, {calls:,} calls, concurrency {CONCURRENCY}, "
        f"latency {LATENCY * 1e3:.0f} ms (fake in a child process)",
        f"wall {got['elapsed']:.2f} s; bound {calls:,} x {LATENCY} s / {CONCURRENCY} = {bound:.2f} s; "
        f"client CPU {got['cpu']:.2f} s ({got['cpu'] / got['elapsed']:.0%} of wall: CPU-bound when near 100%)",
    ]
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(n=100)
