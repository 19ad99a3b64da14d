"""Provisioning: the client's CPU per call in `provision()`, against the same requests sent by hand.

N practices, each with 2 practitioners, 1 assistant and 2 copied master forms: 7 calls a practice plus 2 a
run, concurrency 50, the fake answering after 20 ms. The fake runs in a child process
(`python -m intakeq_partner.testing`) with a core of its own, as a real server would, so this process's CPU
(getrusage) is the client's alone: the headline figure is client CPU per call.

Variants, run in turn in every round (the order rotates), each against a fresh fake (an empty account):
- the facade on each stack (`http_stack="aiohttp"`, `"httpx"`), and on one stock httpx pool;
- the same 7 requests a practice written by hand (no validation, no models, no retries; `json.loads` of every
  answer) with raw aiohttp (the floor for Python), with httpx over our aiohttp transport, and with bare httpx
  on one pool and on our sharded pool.
The latency bound is what the calls would take if nothing but the injected latency cost time:
calls x latency / concurrency; wall / bound is the second figure.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from intakeq_partner import PartnerClient
from intakeq_partner._aiohttp import AiohttpTransport
from intakeq_partner._pool import ShardedTransport
from intakeq_partner.provisioning import provision

from ._common import Result
from ._fakeproc import fake_process
from ._plan import FORMS, build_plan

LATENCY = 0.02
CONCURRENCY = 50
POOL = 64  # connections, as the client's default max_concurrency
TARGET = 2.0  # facade on the fast stack / raw aiohttp, client CPU per call
MOONSHOT = 1.5

Send = Callable[[str, str, str, bytes | None], Awaitable[Any]]
"""(method, path, key, JSON body) -> the decoded answer; raises on a non-2xx status."""


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    share: float = 1.0
    """Fraction of N this variant provisions (the slow ones do fewer; CPU per call does not depend on N)."""


FACADE = (
    Variant("facade-aiohttp", "facade, aiohttp stack (with the fast extra: the default)"),
    Variant("facade-httpx", "facade, httpx stack, sharded pool (without the extra: the default)"),
    Variant("facade-one-pool", "facade, httpx stack, one stock pool", share=0.15),
)
BY_HAND = (
    Variant("raw-aiohttp", "raw aiohttp, same requests (the floor)"),
    Variant("httpx-over-aiohttp", "bare httpx over our aiohttp transport, same requests"),
    Variant("httpx-sharded", "bare httpx on our sharded pool, same requests"),
    Variant("httpx-one-pool", "bare httpx, one stock pool, same requests", share=0.15),
)
VARIANTS = FACADE + BY_HAND


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    elapsed: float
    cpu: float
    calls: int

    @property
    def cpu_per_call(self) -> float:
        return self.cpu / self.calls

    @property
    def wall_over_bound(self) -> float:
        return self.elapsed / (self.calls * LATENCY / CONCURRENCY)


async def _facade(variant: str, base_url: str, key: str, n: int, prefix: str) -> Sample:
    plan = build_plan(n, prefix=prefix)
    options: dict[str, Any]
    if variant == "facade-one-pool":
        limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        options = {"transport": httpx.AsyncHTTPTransport(limits=limits)}
    else:
        options = {"http_stack": variant.removeprefix("facade-")}
    async with PartnerClient(key, base_url=base_url, **options) as partner:
        cpu, start = _cpu(), time.perf_counter()
        report = await provision(partner, plan, concurrency=CONCURRENCY)
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
        calls = partner._transport.requests_sent  # every attempt, retries included
    assert report.ok, report.failures[:3]
    return Sample(elapsed, cpu, calls)


async def _same_requests_by_hand(send: Send, partner_key: str, n: int, prefix: str) -> int:
    """The requests `provision()` sends for N new practices, without the library; returns the call count."""
    masters = {form["Name"]: form["Id"] for form in await send("GET", "/api/partner/masterForms", partner_key, None)}
    assert await send("GET", "/api/partner/practice?page=1", partner_key, None) == []  # an empty account
    left = list(range(n))

    def body(value: dict[str, Any]) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    async def worker() -> None:
        while left:
            i = left.pop()
            ext = f"{prefix}-{i:06d}"
            practice = await send(
                "POST",
                "/api/partner/practice",
                partner_key,
                body(
                    {
                        "PracticeName": f"Practice {i}",
                        "FirstName": "Pat",
                        "LastName": f"Doe {i}",
                        "Email": f"owner{i}@example.com",
                        "ExternalPracticeId": ext,
                        "City": "Springfield",
                    }
                ),
            )
            key = (await send("GET", f"/api/partner/practice/{practice['Id']}/key", partner_key, None))["ApiKey"]
            for doctor, (first, last) in enumerate([("Ann", "Lee"), ("Bob", "Kim")], 1):
                await send(
                    "POST",
                    "/api/v1/practitioners",
                    key,
                    body(
                        {
                            "FirstName": first,
                            "LastName": last,
                            "Email": f"{first.lower()}{i}@example.com",
                            "ExternalPractitionerId": f"{ext}-dr-{doctor}",
                        }
                    ),
                )
            await send(
                "POST",
                "/api/v1/assistants",
                key,
                body(
                    {
                        "Name": "Cy Ray",
                        "Email": f"cy{i}@example.com",
                        "ExternalAssistantId": f"{ext}-as-1",
                        "PractitionerIds": [f"{ext}-dr-1"],
                    }
                ),
            )
            for form in FORMS:
                await send(
                    "POST",
                    "/api/partner/practice/copyForm",
                    partner_key,
                    body(
                        {
                            "SourceMasterFormId": masters[form.name],
                            "DestinationPracticeId": practice["Id"],
                            "CopyAttachedConsentForms": form.copy_consent_forms,
                        }
                    ),
                )

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return 2 + 7 * n


async def _by_hand(variant: str, base_url: str, key: str, n: int, prefix: str) -> Sample:
    headers = {"Content-Type": "application/json"}
    if variant == "raw-aiohttp":
        connector = aiohttp.TCPConnector(limit=POOL)
        async with aiohttp.ClientSession(base_url, connector=connector) as session:

            async def send_aiohttp(method: str, path: str, auth: str, data: bytes | None) -> Any:
                async with session.request(method, path, data=data, headers={**headers, "X-Auth-Key": auth}) as r:
                    content = await r.read()
                    if r.status >= 300:
                        raise RuntimeError(f"{method} {path}: {r.status}")
                    return json.loads(content)

            cpu, start = _cpu(), time.perf_counter()
            calls = await _same_requests_by_hand(send_aiohttp, key, n, prefix)
            return Sample(time.perf_counter() - start, _cpu() - cpu, calls)
    makers: dict[str, Callable[[], httpx.AsyncBaseTransport | None]] = {
        "httpx-over-aiohttp": lambda: AiohttpTransport(POOL),
        "httpx-sharded": lambda: ShardedTransport(POOL),
        "httpx-one-pool": lambda: None,
    }
    transport = makers[variant]()
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, limits=limits) as client:

        async def send_httpx(method: str, path: str, auth: str, data: bytes | None) -> Any:
            r = await client.request(method, path, content=data, headers={**headers, "X-Auth-Key": auth})
            if r.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {r.status_code}")
            return json.loads(r.content)

        cpu, start = _cpu(), time.perf_counter()
        calls = await _same_requests_by_hand(send_httpx, key, n, prefix)
        return Sample(time.perf_counter() - start, _cpu() - cpu, calls)


def _spread(values: list[float], fmt: str) -> str:
    """Median, and the range over rounds."""
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def run(n: int = 400, rounds: int = 5) -> Result:
    started = time.perf_counter()
    result = Result("Provisioning")
    samples: dict[str, list[Sample]] = {v.name: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
        for variant in order:
            size = max(10, int(n * variant.share))
            runner = _facade if variant in FACADE else _by_hand
            # A fresh fake each time, so that every run meets the same empty account (the job lists it first).
            with fake_process("--latency", str(LATENCY), "--seed", "7", "--log-limit", "1000") as fake:
                sample = asyncio.run(runner(variant.name, fake.base_url, fake.partner_key, size, "bench"))
            samples[variant.name].append(sample)

    def per_call(name: str) -> list[float]:
        return [s.cpu_per_call * 1e3 for s in samples[name]]

    ratios = [f / b for f, b in zip(per_call("facade-aiohttp"), per_call("raw-aiohttp"), strict=True)]
    ratio = statistics.median(ratios)
    result.add(
        "client CPU per call: facade on aiohttp / raw aiohttp (median of rounds)",
        _spread(ratios, ".2f"),
        f"<= {TARGET} (moonshot {MOONSHOT})",
        ratio <= TARGET,
        note="moonshot met" if ratio <= MOONSHOT else "",
    )
    for variant in VARIANTS:
        result.add(f"client CPU per call, ms: {variant.label}", _spread(per_call(variant.name), ".2f"), "(information)")
    for variant in VARIANTS:
        walls = [s.wall_over_bound for s in samples[variant.name]]
        result.add(f"wall / latency bound: {variant.label}", _spread(walls, ".2f"), "(information)")
    first = samples["facade-aiohttp"][0]
    fewer = ", ".join(f"{v.name} {max(10, int(n * v.share))}" for v in VARIANTS if v.share != 1)
    result.details += [
        f"{n:,} practices a variant and round ({fewer}), {first.calls:,} calls for {n:,};"
        f" concurrency {CONCURRENCY}, latency {LATENCY * 1e3:.0f} ms,"
        f" fake in a child process; {rounds} rounds, order rotated; figures: median (min-max) over rounds",
        "client CPU per call in ms, by round:",
        *(f"  {v.name:20} " + " ".join(f"{x:5.2f}" for x in per_call(v.name)) for v in VARIANTS),
        "facade on aiohttp / raw aiohttp, by round: " + " ".join(f"{x:.2f}" for x in ratios),
    ]
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(n=40, rounds=2)
