"""The sharded connection pool the transport builds for itself: spreads requests, closes everything."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from intakeq_partner._pool import ShardedTransport, env_proxies_configured, shard_sizes
from intakeq_partner._secret import Secret
from intakeq_partner._transport import Transport
from intakeq_partner.testing import FakeIntakeQ

pytestmark = pytest.mark.usefixtures("httpx_stack")  # the sharded pool is the httpx stack's


def test_shard_sizes_split_evenly_and_add_up() -> None:
    assert shard_sizes(64, 4) == [4] * 16
    assert shard_sizes(10, 4) == [4, 3, 3]
    assert shard_sizes(3, 4) == [3]
    for total in range(1, 200):
        sizes = shard_sizes(total, 4)
        assert sum(sizes) == total and max(sizes) - min(sizes) <= 1 and max(sizes) <= 4
    with pytest.raises(ValueError):
        shard_sizes(0)


async def test_requests_go_to_the_shard_with_the_most_free_connections() -> None:
    release, all_in = asyncio.Event(), asyncio.Event()
    arrived = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        arrived += 1
        if arrived == 10:
            all_in.set()
        await release.wait()
        return httpx.Response(200, content=b"{}")

    pool = ShardedTransport(10, shard_size=4)  # shards of 4, 3 and 3
    for shard in pool.shards:
        await shard.aclose()
    pool.shards = [httpx.MockTransport(handler) for _ in pool.sizes]  # type: ignore[misc]
    async with httpx.AsyncClient(transport=pool) as client:
        sending = [asyncio.create_task(client.get("http://127.0.0.1/x")) for _ in range(10)]
        await all_in.wait()
        assert pool.in_flight == pool.sizes == [4, 3, 3]
        release.set()
        assert all(r.status_code == 200 for r in await asyncio.gather(*sending))
    assert pool.in_flight == [0, 0, 0] and pool.sent == [4, 3, 3]


async def test_a_failed_request_frees_its_place() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    pool = ShardedTransport(8, shard_size=4)
    for shard in pool.shards:
        await shard.aclose()
    pool.shards = [httpx.MockTransport(handler) for _ in pool.sizes]  # type: ignore[misc]
    async with httpx.AsyncClient(transport=pool) as client:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1/x")
    assert pool.in_flight == [0, 0] and pool.sent == [3, 0]  # ties go to the first shard


async def test_the_transport_spreads_real_requests_over_its_shards_and_closes_them_all() -> None:
    fake = FakeIntakeQ(seed=5)
    async with fake.serve() as base_url:
        transport = Transport(base_url=base_url, max_concurrency=16)
        pool = transport._channel.client._transport
        assert isinstance(pool, ShardedTransport)
        assert len(pool.shards) == 4 and pool.sizes == [4, 4, 4, 4]
        key = Secret(fake.partner_key)
        results = await asyncio.gather(
            *(transport.request("GET", "/api/partner/masterForms", key=key) for _ in range(40))
        )
        assert all(r.status_code == 200 for r in results)
        assert sum(pool.sent) == 40 and all(pool.sent)
        assert pool.in_flight == [0, 0, 0, 0]
        assert sum(fake.stats.statuses.values()) == 40
        opened = [len(shard._pool.connections) for shard in pool.shards]
        assert all(opened)
        await transport.aclose()
        assert [len(shard._pool.connections) for shard in pool.shards] == [0, 0, 0, 0]


def test_own_clients_transports_and_env_proxies_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert not env_proxies_configured()
    base = "https://api.test"
    assert isinstance(Transport(base_url=base)._channel.client._transport, ShardedTransport)
    mock = httpx.MockTransport(lambda r: httpx.Response(200))
    assert Transport(base_url=base, transport=mock)._channel.client._transport is mock
    own = httpx.AsyncClient()
    assert Transport(base_url=base, http_client=own)._channel.client is own
    # Small or no limits: one shard, still ours, so the guard against answers that overrun their framing holds.
    assert Transport(base_url=base, max_concurrency=4)._channel.client._transport.sizes == [4]  # type: ignore[attr-defined]
    assert Transport(base_url=base, max_concurrency=None)._channel.client._transport.sizes == [None]  # type: ignore[attr-defined]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    assert env_proxies_configured()
    assert not isinstance(Transport(base_url=base)._channel.client._transport, ShardedTransport)
