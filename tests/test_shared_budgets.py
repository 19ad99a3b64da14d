"""Budgets shared through a real Redis: several processes, one budget; and what happens when Redis goes away."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import httpx
import pytest
import redis.asyncio as aioredis
import respx
from rawservers import respond, serve
from redis_server import RedisServer, redis_server

from bench.shared_budget import measure
from intakeq_partner import PartnerClient, RateLimitError, RateLimiterUnavailableError, RateLimits
from intakeq_partner._budgets import WaitTooLong, budget_id
from intakeq_partner._constants import MAX_PAUSE_AFTER_429
from intakeq_partner._redis import RedisBudgets
from intakeq_partner._secret import Secret
from intakeq_partner._transport import Transport
from intakeq_partner.testing import FakeIntakeQ

BASE = "https://api.test"
PATH = "/api/v1/practitioners"
KEY = Secret("practice-key-shared-0123")
PARTNER_KEY = "partner-key-shared-0123"


def budgets(server: RedisServer, **options: object) -> RedisBudgets:
    limits = RateLimits(redis_url=server.url, **options)  # type: ignore[arg-type]
    return RedisBudgets(limits, clock=time.monotonic, sleep=asyncio.sleep)


async def test_four_processes_share_one_budget_with_no_429_and_at_least_90_percent_of_it(redis: RedisServer) -> None:
    # The share counts only the interval in which all four workers ran (at least 2 s): a worker the busy
    # machine wakes late shortens the interval, it does not lower the share.
    outcome = await measure(redis.url, rate=20, seconds=2.0, processes=4, tasks=3)
    assert outcome.seconds >= 2.0, outcome
    assert outcome.refused == 0, outcome
    assert not outcome.errors and outcome.fallbacks == 0, outcome
    assert outcome.share("partner") >= 0.9 and outcome.share("practice") >= 0.9, outcome


async def test_a_window_is_shared_by_every_process_that_uses_the_same_redis(redis: RedisServer) -> None:
    one, other = budgets(redis, practice="2/10s"), budgets(redis, practice="2/10s")
    async with one.slot(KEY, "practice", None), other.slot(KEY, "practice", None):
        finishing = time.monotonic()  # both requests finish (in Redis's eyes) after this
    deadline = time.monotonic() + 0.5
    with pytest.raises(WaitTooLong) as info:
        async with one.slot(KEY, "practice", deadline):
            pass
    since = time.monotonic() - finishing  # Redis computed the wait less than this after they finished
    # The wait is the window (10 s) less the time since the older one finished, however slow the machine;
    # 2 ms for Redis's millisecond rounding.
    assert 10 - since - 0.002 <= info.value.wait <= 10
    # Another key, and the partner budget of the same key, are untouched.
    async with one.slot(Secret("another-practice-key"), "practice", deadline), one.slot(KEY, "partner", deadline):
        pass
    await one.aclose()
    await other.aclose()


async def test_concurrency_per_key_holds_across_processes(redis: RedisServer) -> None:
    one, other = budgets(redis, concurrency=1), budgets(redis, concurrency=1)
    async with one.slot(KEY, "practice", None):
        with pytest.raises(WaitTooLong):
            async with other.slot(KEY, "practice", time.monotonic() + 0.2):
                pass
    async with other.slot(KEY, "practice", time.monotonic() + 1):  # released: free again
        pass
    await one.aclose()
    await other.aclose()


async def test_a_429_seen_by_one_process_pauses_the_key_in_every_other(redis: RedisServer) -> None:
    limits = RateLimits(redis_url=redis.url, max_wait=0.5)
    with respx.mock(base_url=BASE) as mock:
        route = mock.get(PATH).mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
        before = time.monotonic()
        async with Transport(base_url=BASE, limits=limits, max_retries=0, http_stack="httpx") as one:
            with pytest.raises(RateLimitError):
                await one.request("GET", PATH, key=KEY)
        async with Transport(base_url=BASE, limits=limits, http_stack="httpx") as other:
            with pytest.raises(RateLimitError) as info:
                await other.request("GET", PATH, key=KEY)
        since = time.monotonic() - before  # the pause was set, and its remainder read, within this
    assert route.call_count == 1  # the second process sent nothing
    assert info.value.retry_after is not None and 30 - since - 0.002 <= info.value.retry_after <= 30


async def test_redis_holds_hashes_of_keys_never_the_keys(redis: RedisServer) -> None:
    shared = budgets(redis, practice="5/s")
    async with shared.slot(KEY, "practice", None):
        pass
    await shared.pause(KEY, "practice", 1.0)
    client = aioredis.Redis.from_url(redis.url)
    names = [name.decode() if isinstance(name, bytes) else name for name in await client.keys("*")]
    values = [await client.zrange(n, 0, -1) if n.endswith(":log") else await client.get(n) for n in names]
    await client.aclose()
    await shared.aclose()
    assert len(names) == 2 and all(budget_id(KEY) in name for name in names)
    assert KEY.reveal() not in repr(names) + repr(values)


async def test_redis_killed_mid_run_falls_back_to_local_budgets_warning_once(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="intakeq_partner")
    fake = FakeIntakeQ(seed=4)
    limits = RateLimits(partner="200/s", redis_url=redis.url)
    async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport(), limits=limits) as p:
        shared = p._transport._pacing.budgets
        assert isinstance(shared, RedisBudgets)
        async with asyncio.timeout(60):  # a guard: a hang fails here instead of stalling the suite
            for _ in range(10):
                await p.forms.master()
            assert shared.fallbacks == 0
            redis.kill()
            results = await asyncio.gather(*(p.forms.master() for _ in range(20)), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert shared.fallbacks >= 20
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and f"127.0.0.1:{redis.port}" in warnings[0]


async def test_the_shared_budgets_are_used_again_once_the_background_probe_finds_redis_back(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="intakeq_partner")
    shared = RedisBudgets(RateLimits(redis_url=redis.url), clock=time.monotonic, sleep=asyncio.sleep)
    async with shared.slot(KEY, "practice", None):
        pass
    redis.kill()
    for _ in range(3):
        async with shared.slot(KEY, "practice", None):
            pass
    assert shared.fallbacks == 3 and not shared.healthy  # every slot falls back to the in-process budgets
    with redis_server(redis.port):
        async with asyncio.timeout(30):  # the probe's intervals grow to REDIS_RETRY_INTERVAL at most
            while not shared.healthy:
                async with shared.slot(KEY, "practice", None):  # callers never ask Redis themselves meanwhile
                    pass
                await asyncio.sleep(0.05)
        used = shared.fallbacks
        async with shared.slot(KEY, "practice", None):
            pass
        assert shared.fallbacks == used  # through Redis again
        await shared.aclose()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1 and sum("reachable again" in m for m in messages) == 1


async def test_falling_back_starts_from_what_the_shared_windows_held_not_from_empty_windows(
    redis: RedisServer,
) -> None:
    """Four processes' worth of requests in Redis's window: a process falling back assumes its share spent."""
    processes = [budgets(redis, practice="8/10s", fallback_share=0.25) for _ in range(4)]
    for shared in processes:
        for _ in range(2):
            async with shared.slot(KEY, "practice", None):
                pass
    one = processes[-1]  # the last to ask: Redis told it the window held 8
    assert len(one.fallback) == 0  # what Redis said is kept as a few numbers a key, no budget until needed
    redis.kill()
    with pytest.raises(WaitTooLong):  # its share (2 of 8) is spent in this window: nothing more is sent
        async with one.slot(KEY, "practice", time.monotonic() + 1):
            pass
    assert one.fallbacks == 1 and not one.healthy
    other_key = Secret("a-key-redis-never-saw-0123")
    async with one.slot(other_key, "practice", time.monotonic() + 1):  # a key with nothing spent: goes
        pass
    for shared in processes:
        await shared.aclose()


async def test_a_hung_redis_never_holds_a_call_past_its_call_timeout(redis: RedisServer) -> None:
    """SIGSTOP: the acquire in flight gives up within the call's time, the call falls back; the release is
    sent in the background, so leaving the slot waits for nothing."""
    fake = FakeIntakeQ(seed=4)
    limits = RateLimits(partner="200/s", redis_url=redis.url)
    async with PartnerClient(
        fake.partner_key, base_url=fake.base_url, transport=fake.transport(), limits=limits, call_timeout=0.8
    ) as p:
        await p.forms.master()
        redis.process.send_signal(signal.SIGSTOP)
        try:
            results = await asyncio.gather(*(p.forms.master() for _ in range(20)), return_exceptions=True)
        finally:
            redis.process.send_signal(signal.SIGCONT)
        shared = p._transport._pacing.budgets
        assert isinstance(shared, RedisBudgets)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert shared.outages == 1 and shared.fallbacks >= 20


def test_a_limiter_used_from_a_second_event_loop_probes_again_there(redis: RedisServer) -> None:
    """The probe ends with the loop it ran in; the next loop that finds Redis in trouble starts another."""
    shared = budgets(redis)

    async def use() -> None:
        async with shared.slot(KEY, "practice", None):
            pass

    redis.kill()
    asyncio.run(use())  # falls back; the probe it started is cancelled as that loop ends
    assert not shared.healthy

    async def until_back() -> None:
        async with asyncio.timeout(30):
            while not shared.healthy:
                await use()
                await asyncio.sleep(0.05)
        await use()
        await shared.aclose()

    with redis_server(redis.port):
        asyncio.run(until_back())
    assert shared.outages == 1


async def test_redis_killed_with_fail_closed_chosen_raises_and_sends_nothing(redis: RedisServer) -> None:
    fake = FakeIntakeQ(seed=4)
    limits = RateLimits(partner="200/s", redis_url=redis.url, on_redis_error="fail")
    async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport(), limits=limits) as p:
        await p.forms.master()
        redis.kill()
        sent = fake.stats.statuses[200]
        async with asyncio.timeout(60):
            with pytest.raises(RateLimiterUnavailableError) as info:
                await p.forms.master()
    assert fake.stats.statuses[200] == sent
    assert f"127.0.0.1:{redis.port}" in str(info.value)


async def test_an_unreachable_redis_never_puts_its_password_in_an_error(redis: RedisServer) -> None:
    port = redis.port
    redis.kill()
    limits = RateLimits(redis_url=f"redis://:pa55word@127.0.0.1:{port}/0", on_redis_error="fail")
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        route = mock.get(PATH).mock(return_value=httpx.Response(200, json=[]))
        async with Transport(base_url=BASE, limits=limits, http_stack="httpx") as t:
            with pytest.raises(RateLimiterUnavailableError) as info:
                await t.request("GET", PATH, key=KEY)
    assert route.call_count == 0
    assert "pa55word" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


# --- absurd Retry-After values: never a crash, never a pause without end ----------------------------------------


@pytest.mark.parametrize("header", ["inf", "1e400", "1e9", "86400"])
async def test_an_absurd_retry_after_neither_crashes_nor_pauses_the_shared_key_for_years(
    redis: RedisServer, header: str
) -> None:
    limits = RateLimits(redis_url=redis.url, max_wait=0.5)
    async with serve(respond(429, {"error": "slow down"}, headers={"Retry-After": header})) as server:
        async with PartnerClient(PARTNER_KEY, base_url=server.base_url, limits=limits, max_retries=0) as p:
            with pytest.raises(RateLimitError) as info:
                await p.forms.master()
    client = aioredis.Redis.from_url(redis.url)
    pauses = [await client.pttl(name) for name in await client.keys("*:pause")]
    await client.aclose()
    assert len(pauses) == 1 and 0 < pauses[0] <= MAX_PAUSE_AFTER_429 * 1000
    wish = info.value.retry_after  # the server's wish when readable (a day: yes; years or infinity: no)
    assert wish == (86400 if header == "86400" else limits.pause_after_429)


async def test_aclose_while_redis_hangs_leaves_no_probe_running(redis: RedisServer) -> None:
    """A release still waiting on a stopped Redis when the limiter is closed times out inside aclose(): that
    is no new outage, and nothing (no probe, no warning) outlives aclose()."""
    shared = budgets(redis, practice="100/s")
    async with shared.slot(KEY, "practice", None):
        redis.process.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(0.3)  # the call ended a moment before shutdown: its release is on its way
        await shared.aclose()  # and times out meanwhile
    finally:
        redis.process.send_signal(signal.SIGCONT)
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not left and shared._probe is None and shared.outages == 0, left
