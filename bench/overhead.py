"""Per-call overhead: `partner.practices.list(page=1)` against a bare httpx call on the same stack, and the stock code.

The fake runs under uvicorn in this process's loop, on loopback, with no injected latency, holding 100
practices; every call fetches all of them. For each HTTP stack the facade is compared with a bare
`httpx.AsyncClient` on the same transport (`http_stack="httpx"`: our sharded pool; `"aiohttp"`: our aiohttp
transport), and with the stock generated function. All clients are called in turn (ABCDE ABCDE ...) after a
warm-up; each round gives a median per-call time per client, and the quoted ratio is the median over rounds.

The server's own time is the same for all and dominates; so a second, client-only measurement answers the
same request from an in-memory transport (`httpx.MockTransport` with the recorded body) to show the
client-side cost alone. That one is for information: the target is on the loopback figure.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from intakeq_partner import PartnerClient
from intakeq_partner._stack import HttpStack, build_transport
from intakeq_partner.testing import FakeIntakeQ

from ._common import Result, median, stock_client

PATH = "/api/partner/practice"
TARGET = 1.10
STACKS: tuple[HttpStack, ...] = ("httpx", "aiohttp")
Call = Callable[[], Awaitable[Any]]


def _seed(fake: FakeIntakeQ, n: int = 100) -> None:
    for i in range(n):
        fake.add_practice(
            PracticeName=f"Practice {i}",
            FirstName="Pat",
            LastName=f"Doe {i}",
            Email=f"pat{i}@example.com",
            ExternalPracticeId=f"ext-{i}",
            City="Springfield",
        )


async def _interleaved(calls: dict[str, Call], rounds: int, per_round: int, warmup: int) -> dict[str, list[float]]:
    """Median seconds per call of each client, one value per round."""
    for _ in range(warmup):
        for call in calls.values():
            await call()
    medians: dict[str, list[float]] = {name: [] for name in calls}
    clock = time.perf_counter
    for _ in range(rounds):
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(per_round):
            for name, call in calls.items():
                start = clock()
                await call()
                samples[name].append(clock() - start)
        for name, values in samples.items():
            medians[name].append(median(values))
    return medians


def _clients(
    stock: Any, base_url: str, key: str, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[dict[str, Call], list[Any]]:
    """Each way of listing practices, each with its own connection pool, plus what must be closed.

    With `transport` (in memory) every client uses it and there is one facade; over loopback, one facade and
    one bare client per stack."""
    calls: dict[str, Call] = {}
    closers: list[Any] = []

    def add(name: str, facade: PartnerClient, bare: httpx.AsyncClient) -> None:
        async def facade_call() -> Any:
            return await facade.practices.list(page=1)  # one request, as the others (list() walks pages)

        async def bare_call() -> Any:
            response = await bare.get(PATH, params={"page": "1"})
            response.raise_for_status()
            return json.loads(response.content)

        calls[f"facade {name}".strip()], calls[f"bare {name}".strip()] = facade_call, bare_call
        closers.extend([facade, bare])

    headers = {"X-Auth-Key": key}
    if transport is not None:
        add(
            "",
            PartnerClient(key, base_url=base_url, transport=transport),
            httpx.AsyncClient(base_url=base_url, headers=headers, transport=transport),
        )
    else:
        for stack in STACKS:
            facade = PartnerClient(key, base_url=base_url, http_stack=stack)
            bare_transport = build_transport(stack, 64)[1]  # what the facade's client is built on
            add(stack, facade, httpx.AsyncClient(base_url=base_url, headers=headers, transport=bare_transport))
    authenticated = stock.AuthenticatedClient(
        base_url=base_url,
        token=key,
        prefix="",
        auth_header_name="X-Auth-Key",
        httpx_args={"transport": transport} if transport else {},
    )
    from iq_stock.api.practices import list_practices  # type: ignore[import-not-found]  # generated at bench time

    async def stock_asyncio() -> Any:
        return await list_practices.asyncio(client=authenticated, page=1)

    calls["stock asyncio()"] = stock_asyncio
    closers.append(authenticated.get_async_httpx_client())
    return calls, closers


async def _check(calls: dict[str, Call], n: int) -> None:
    for name, call in calls.items():
        answer = await call()
        assert isinstance(answer, list) and len(answer) == n, (name, type(answer))


async def _measure_loopback(stock: Any, rounds: int, per_round: int, warmup: int) -> dict[str, list[float]]:
    fake = FakeIntakeQ(seed=1)
    _seed(fake)
    async with fake.serve(port=0) as base_url:
        calls, closers = _clients(stock, base_url, fake.partner_key)
        try:
            await _check(calls, 100)
            return await _interleaved(calls, rounds, per_round, warmup)
        finally:
            for closer in closers:
                await closer.aclose()


async def _measure_in_memory(stock: Any, rounds: int, per_round: int, warmup: int) -> dict[str, list[float]]:
    fake = FakeIntakeQ(seed=1)
    _seed(fake)
    async with fake.client() as client:  # record the real answer once, then serve it from memory
        response = await client.get(PATH, params={"page": "1"}, headers={"X-Auth-Key": fake.partner_key})
    body, headers = response.content, {"Content-Type": "application/json"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=headers)

    calls, closers = _clients(stock, "http://127.0.0.1:9", "k" * 32, httpx.MockTransport(handler))
    try:
        await _check(calls, 100)
        return await _interleaved(calls, rounds, per_round, warmup)
    finally:
        for closer in closers:
            await closer.aclose()


def _report(result: Result, medians: dict[str, list[float]], label: str, with_target: bool) -> None:
    for facade in [name for name in medians if name.startswith("facade")]:
        stack = facade.removeprefix("facade").strip()
        bare = medians[f"bare {stack}".strip()]
        ratios = [f / b for f, b in zip(medians[facade], bare, strict=True)]
        ratio = median(ratios)
        stock_ratio = median([f / s for f, s in zip(medians[facade], medians["stock asyncio()"], strict=True)])
        name = f"{label}, {stack} stack" if stack else label
        result.add(
            f"{name}: facade / bare httpx on the same transport",
            f"{ratio:.3f} ({min(ratios):.3f}-{max(ratios):.3f})",
            f"<= {TARGET}" if with_target else "(information)",
            ratio <= TARGET if with_target else None,
        )
        result.add(f"{name}: facade / stock asyncio()", f"{stock_ratio:.3f}", "(information)")
    parts = ", ".join(f"{name} {median(values) * 1e6:.0f} us" for name, values in medians.items())
    result.details.append(f"{label}, median per call: {parts}")


def run(rounds: int = 7, per_round: int = 150, warmup: int = 50) -> Result:
    started = time.perf_counter()
    result = Result("Per-call overhead")
    with stock_client() as stock:
        loopback = asyncio.run(_measure_loopback(stock, rounds, per_round, warmup))
        memory = asyncio.run(_measure_in_memory(stock, rounds, per_round * 4, warmup))
    _report(result, loopback, "loopback (uvicorn)", with_target=True)
    _report(result, memory, "client only (in-memory)", with_target=False)
    result.details.append(
        f"list of 100 practices; {rounds} rounds of {per_round} calls per client (x4 in memory), in turn;"
        " figures: median (min-max) over rounds"
    )
    client_cost = {n: median(v) for n, v in memory.items()}
    extra = (client_cost["facade"] - client_cost["bare"]) * 1e6
    result.details.append(f"facade's own cost over bare httpx + json.loads: {extra:.0f} us per call")
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(rounds=2, per_round=20, warmup=5)
