"""What observing calls costs: client CPU per call with nothing listening, with a no-op hook (hearing every
event), with a no-op hook for CallFinished only (`hook_for`), with the OpenTelemetry API installed but not set
up, and with the OpenTelemetry no-op tracer provider set up.

The fake runs in its own process; the figure is this (client) process's user CPU per call (the kernel's time
in socket calls, the same for every variant, is what varies most with the load of a shared machine). The
variants take turns batch by batch on one client, so load that comes and goes hits them all alike.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from typing import Any

import httpx

from intakeq_partner import CallFinished, Event, PartnerClient, hook_for

from ._common import Result
from ._fakeproc import fake_process

VARIANTS = (
    "nothing listening",
    "no-op hook",
    "no-op hook for CallFinished only",
    "OpenTelemetry API, not set up",
    "OpenTelemetry no-op tracer",
)


def _otel(set_up: bool) -> bool:
    """Set the global tracer provider to the API's no-op one, or back to unset (through the API's private
    globals, as OpenTelemetry's own test utilities do). False: opentelemetry-api is not installed."""
    try:
        from opentelemetry import trace
        from opentelemetry.util._once import Once
    except ImportError:
        return False
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    if set_up:
        trace.set_tracer_provider(trace.NoOpTracerProvider())
    return True


def _noop(event: Event) -> None:
    return None


class _Canned(httpx.AsyncBaseTransport):
    """Answers every request at once with what the fake answers for the master forms (headers as uvicorn's):
    the client's own CPU, with no server, socket or kernel time in it, so the variants' difference stands out."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [("date", "Wed, 02 Dec 2026 12:00:00 GMT"), ("server", "uvicorn"), ("content-length", "2")]
        return httpx.Response(200, headers=[*headers, ("content-type", "application/json")], content=b"[]")


async def _measure(
    base_url: str, key: str, batches: int, batch: int, concurrency: int, stack: str | httpx.AsyncBaseTransport
) -> dict[str, list[float]]:
    """User CPU seconds of each batch of `batch` calls, by variant. The variants take turns batch by batch on one
    client (a `with_options` view holds the no-op hook), so load that comes and goes hits them all alike."""
    otel = _otel(False)
    variants = VARIANTS if otel else VARIANTS[:3]
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    if isinstance(stack, str):
        options: dict[str, Any] = {"max_concurrency": concurrency, "http_stack": stack}
    else:
        options = {"transport": stack}
    async with PartnerClient(key, base_url=base_url, **options) as partner:
        views = {
            VARIANTS[1]: partner.with_options(hooks=[_noop]),
            VARIANTS[2]: partner.with_options(hooks=[hook_for(CallFinished)(_noop)]),
        }

        async def calls(client: PartnerClient, count: int) -> None:
            pending = iter(range(count))

            async def worker() -> None:
                for _ in pending:
                    await client.forms.master()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await calls(partner, batch * 2)  # connections opened, caches warm
        for number in range(batches):
            shift = number % len(variants)
            for name in variants[shift:] + variants[:shift]:  # each variant first in turn
                if otel:
                    _otel(name == VARIANTS[4])
                gc.collect()
                started = resource.getrusage(resource.RUSAGE_SELF).ru_utime
                await calls(views.get(name, partner), batch)
                cpu[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_utime - started)
    _otel(False)
    return cpu


def run(batches: int = 40, batch: int = 250, concurrency: int = 20, groups: int = 5) -> Result:
    started = time.perf_counter()
    result = Result("Observability overhead")
    size = max(1, batches // groups)
    with fake_process("--seed", "1") as fake:
        loopback = asyncio.run(_measure(fake.base_url, fake.partner_key, batches, batch, concurrency, "auto"))
        plain = asyncio.run(_measure(fake.base_url, fake.partner_key, batches // 4, batch, concurrency, "httpx"))
        canned = asyncio.run(_measure(fake.base_url, fake.partner_key, batches, batch * 4, concurrency, _Canned()))
    bases = {
        "the default stack (aiohttp)": sum(loopback[VARIANTS[0]]) / len(loopback[VARIANTS[0]]) / batch,
        "the httpx stack": sum(plain[VARIANTS[0]]) / len(plain[VARIANTS[0]]) / batch,
    }
    for stack, base in bases.items():
        result.add(
            f"client CPU per call over loopback, nothing listening, {stack}", f"{base * 1e6:.0f} us", "(information)"
        )
    for name in VARIANTS[1:]:
        if name not in canned:
            result.add(name, "not measured", note="opentelemetry-api is not installed")
            continue
        # What the variant adds, in the client alone (canned answers), as a share of a real call's client CPU.
        added = [(v - b) / (batch * 4) for v, b in zip(canned[name], canned[VARIANTS[0]], strict=True)]
        mean = sum(added) / batches
        spread = [sum(added[i : i + size]) / size for i in range(0, batches, size)]
        for stack, base in bases.items():
            figure = f"added client CPU per call, {name}, share of a call's on {stack}"
            value = f"{mean / base:.1%} ({min(spread) / base:.1%} to {max(spread) / base:.1%})"
            result.add(figure, value, "< 3%", mean / base < 0.03, f"{mean * 1e6:.1f} us")
        ratio = sum(loopback[name]) / sum(loopback[VARIANTS[0]])
        parts = [
            sum(loopback[name][i : i + size]) / sum(loopback[VARIANTS[0]][i : i + size])
            for i in range(0, batches, size)
        ]
        figure = f"client CPU per call over loopback (aiohttp), {name} / nothing listening"
        result.add(figure, f"{ratio:.3f} ({min(parts):.3f}-{max(parts):.3f})", "(information)")
    result.details.append(
        f"GET master forms at concurrency {concurrency}, the fake in its own process (loopback) or canned answers"
        f" in memory; the variants take turns in batches ({batch} calls over loopback, {batch * 4} canned) on one"
        f" client, {batches} batches each ({batches // 4} on the httpx stack); user CPU; the share: what a variant"
        f" adds with canned answers over a loopback call's CPU; min to max over {groups} groups of batches"
    )
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(batches=4, batch=50, groups=1)
