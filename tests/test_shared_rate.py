"""The learned rate shared through a real Redis (`_sharedrate.py`): two limiters stand for two processes.

One send schedule for the key across processes, one cut per wave of 429s (published by the first process
whose pause ends, adopted by the others without a 429 of their own), growth from the answers of all, and
local pacing from the rate last known when Redis goes away, a budget the ceiling still. About 1.2 s.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
import redis.asyncio as aioredis
from redis_server import RedisServer

from intakeq_partner import RateLimits
from intakeq_partner._budgets import WaitTooLong
from intakeq_partner._pacing import BETA, Pacing
from intakeq_partner._redis import RedisBudgets
from intakeq_partner._secret import Secret
from intakeq_partner._sharedrate import SharedKeyPace

KEY = Secret("partner-key-shared-rate-0123")


def process(server: RedisServer, **options: object) -> Pacing:
    """One process's pacing, as its transport holds it, on the shared Redis."""
    limits = RateLimits(redis_url=server.url, **options)  # type: ignore[arg-type]
    return Pacing(limits, clock=time.monotonic, sleep=asyncio.sleep)


def pace(p: Pacing) -> SharedKeyPace:
    found = p.pace(KEY, "partner")
    assert isinstance(found, SharedKeyPace)
    return found


async def send(p: Pacing, status: int = 200, retry_after: float = 0.3) -> None:
    """One request through the process's pacing, answered `status`; a 429 pauses the key as the transport does."""
    headers = {"Retry-After": str(retry_after)} if status == 429 else {}
    async with p.slot(KEY, "partner", None) as seen:
        seen(httpx.Response(status, headers=headers))
    if status == 429:
        await p.pause(KEY, "partner", retry_after)


async def test_sends_of_every_process_take_turns_on_one_schedule(redis: RedisServer) -> None:
    a, b = process(redis), process(redis)
    try:
        links = [pace(a)._link, pace(b)._link]
        waits = []
        for i in range(4):  # 10 s apart: whichever process asks, the next send is one interval after the last
            turn = await links[i % 2].turn(10.0, None, None)
            assert turn is not None and turn.reserved
            waits.append(round(turn.wait))
        assert waits == [0, 10, 20, 30]
        refused = await links[0].turn(10.0, 5.0, None)  # past its deadline: nothing reserved
        assert refused is not None and not refused.reserved and round(refused.wait) == 40
        assert round(((await links[1].turn(10.0, None, None)) or refused).wait) == 40
        await a.pause(KEY, "partner", 100.0)  # a pause holds the schedule too, in every process
        turn = await links[1].turn(10.0, None, None)
        assert turn is not None and 99 <= turn.wait <= 100
        pace(a)._set_rate(1.0)  # as if learned: a send must wait for the pause, past a deadline 1 s away
        with pytest.raises(WaitTooLong):
            await pace(a).turn(time.monotonic() + 1)
    finally:
        await a.aclose()
        await b.aclose()


async def test_one_cut_for_the_key_adopted_by_every_process_then_grown_by_the_answers_of_all(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = process(redis), process(redis)
    try:
        # First contact: together they get 40 requests through within the second, then meet 429s (each its own).
        await asyncio.gather(*(send(p) for p in (a, b) for _ in range(20)))
        await asyncio.gather(send(a, 429), send(b, 429))
        assert pace(a).rate is None and pace(b).rate is None
        await asyncio.sleep(0.31)  # the pause (0.3 s) ends
        await send(a)  # a's 429 settles: what the server took from both over a second (a's own: 20), cut by BETA
        rate = pace(a).rate
        assert 30 <= pace(a).w_max <= 41 and pace(a)._r0 == BETA * pace(a).w_max
        assert rate is not None and rate < pace(a).w_max
        await send(b)  # b's 429 was of the same wave: b takes a's cut instead of cutting again
        assert pace(b).rate is not None and (pace(b).w_max, pace(b)._r0) == (pace(a).w_max, pace(a)._r0)
        assert pace(a)._version == pace(b)._version == 1
        for _ in range(3):  # the answers of both grow the one rate
            await asyncio.gather(send(a), send(b))
        await asyncio.sleep(0.05)  # the last releases (sent in the background) reach Redis
        await send(a)
        await send(b)
        # Each process had 5 answers since the cut; the rate grew with the 10 of both.
        assert pace(a)._n >= 9 and pace(b)._n >= 9
        grown = [pace(a).rate, pace(b).rate]
        assert all(r is not None and r > rate for r in grown), grown
        c = process(redis, partner="25/s")  # a third process, with a budget: the shared rate, but its ceiling
        try:
            await send(c)
            assert pace(c)._version == 1 and pace(c).rate == 25
        finally:
            await c.aclose()

        # Redis goes away: each process paces alone at the rate it last knew, one warning, no stall.
        caplog.set_level(logging.WARNING, logger="intakeq_partner")
        learned = grown[0]
        assert learned is not None
        await b.aclose()  # (its releases done: the warning below is a's)
        redis.kill()
        async with asyncio.timeout(10):
            for _ in range(3):
                await send(a)
        alone = pace(a).rate
        assert alone is not None and alone >= learned
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
        budgets = a.budgets
        assert isinstance(budgets, RedisBudgets) and not budgets.healthy
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_cut_made_after_redis_forgot_the_key_is_adopted_even_at_a_version_seen_before(
    redis: RedisServer,
) -> None:
    a, b = process(redis), process(redis)
    try:
        first = await pace(a)._link.cut(0, (20.0, 14.0, 10.0, 150.0, 0.0), None)
        assert first is not None and first.version == 1
        await pace(b).turn(None)
        assert (pace(b)._version, pace(b).w_max) == (1, 20.0)
        client = aioredis.Redis.from_url(redis.url)
        await client.flushall()  # what a restart without persistence leaves: nothing
        await client.aclose()
        second = await pace(a)._link.cut(0, (8.0, 5.6, 10.0, 150.0, 0.0), None)  # the first cut after it: version 1
        assert second is not None and second.version == 1
        await pace(b).turn(None)
        rate = pace(b).rate
        assert pace(b).w_max == 8.0 and rate is not None and rate <= 8.0  # not 20 until the next cut
    finally:
        await a.aclose()
        await b.aclose()


async def test_while_redis_is_away_each_process_paces_at_its_fallback_share_of_the_learned_rate(
    redis: RedisServer,
) -> None:
    now = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # a virtual clock: the waits are the pacing's, not the test's
        slept.append(round(seconds, 6))
        now[0] += seconds

    limits = RateLimits(redis_url=redis.url, fallback_share=0.5)
    p = Pacing(limits, clock=lambda: now[0], sleep=sleep)
    try:
        key = pace(p)
        await key._link.cut(0, (10.0, 10.0, 10.0, 150.0, 0.0), None)  # the key's learned rate: 10 a second
        await key.turn(None)
        assert key.rate == 10.0
        redis.kill()  # 2 processes, each told it has half of every budget while alone: half the rate too
        for _ in range(4):
            await key.turn(None)
        assert slept[-3:] == [0.2, 0.2, 0.2], slept  # not 0.1: two processes would send 20 a second together
    finally:
        await p.aclose()


async def test_a_caller_cancelled_while_waiting_for_its_reserved_turn_gives_the_turn_back(redis: RedisServer) -> None:
    asleep = asyncio.Event()

    async def sleep(seconds: float) -> None:
        asleep.set()
        await asyncio.sleep(seconds)

    a, b = Pacing(RateLimits(redis_url=redis.url), clock=time.monotonic, sleep=sleep), process(redis)
    try:
        key = pace(a)
        await key._link.cut(0, (0.1, 0.1, 10.0, 150.0, 0.0), None)  # the key's learned rate: a send every 10 s
        await key.turn(None)  # adopts it
        await key.turn(None)  # the key's first paced send: now; the next one's turn is 10 s from now
        waiting = asyncio.create_task(key.turn(None))  # reserves that turn and waits for it
        await asleep.wait()
        waiting.cancel()  # a web request timing out, a job stopping
        with pytest.raises(asyncio.CancelledError):
            await waiting
        budgets = a.budgets
        assert isinstance(budgets, RedisBudgets)
        await asyncio.gather(*budgets._background)
        turn = await pace(b)._link.turn(10.0, None, None)
        assert turn is not None and turn.reserved and 9 < turn.wait <= 10  # that turn, not the one after (20 s)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_pause_that_begins_while_a_send_waits_for_its_reserved_turn_holds_that_send(redis: RedisServer) -> None:
    other = process(redis)

    async def sleep(seconds: float) -> None:  # virtual; while the first turn is awaited, another process meets a 429
        if not paused:
            paused.append(seconds)
            await other.pause(KEY, "partner", 100.0)

    paused: list[float] = []
    a = Pacing(RateLimits(redis_url=redis.url), clock=time.monotonic, sleep=sleep)
    try:
        key = pace(a)
        await key._link.cut(0, (2.0, 2.0, 10.0, 150.0, 0.0), None)  # the key's learned rate: 2 a second
        await key.turn(None)  # adopts it
        await key.turn(None)  # sends now: the next turn is half a second away
        with pytest.raises(WaitTooLong):  # its turn came, but within the pause (Retry-After: 100 s)
            await key.turn(time.monotonic() + 5)
        assert paused and 0 < paused[0] <= 0.5
    finally:
        await a.aclose()
        await other.aclose()


async def test_a_cut_made_while_redis_was_away_is_published_when_it_is_back(redis: RedisServer) -> None:
    a, b = process(redis), process(redis)
    try:
        await pace(a)._link.cut(0, (20.0, 14.0, 10.0, 150.0, 0.0), None)
        await pace(a).turn(None)
        await pace(b).turn(None)
        assert pace(a)._version == pace(b)._version == 1
        budgets = a.budgets
        assert isinstance(budgets, RedisBudgets)
        budgets.healthy = False  # Redis away (for this process): a 429's pause ends, the cut is made alone
        pace(a)._cut(6.0, 1.0)
        budgets.healthy = True  # back
        await pace(a).turn(None)
        assert pace(a).w_max == 6.0 and pace(a)._version == 2  # kept, and published: not the older cut of 20
        await pace(b).turn(None)
        assert pace(b).w_max == 6.0 and pace(b)._version == 2
    finally:
        await a.aclose()
        await b.aclose()


async def test_after_redis_forgot_the_key_a_process_that_knows_its_rate_tells_the_others(redis: RedisServer) -> None:
    a, c = process(redis), process(redis)
    try:
        await pace(a)._link.cut(0, (20.0, 14.0, 10.0, 150.0, 0.0), None)
        await pace(a).turn(None)
        client = aioredis.Redis.from_url(redis.url)
        await client.flushall()  # a restart without persistence
        await client.aclose()
        await pace(a).turn(None)  # learns that Redis forgot
        await pace(a).turn(None)  # and publishes what it knows
        await pace(c).turn(None)  # a process started after the restart: the key's rate, not a burst until a 429
        assert pace(c).w_max == 20.0 and pace(c).rate is not None
    finally:
        await a.aclose()
        await c.aclose()


@pytest.mark.parametrize("learned", [True, False], ids=["learned-rate", "nothing-learned"])
async def test_a_send_asking_for_its_turn_before_its_own_pause_reaches_redis_waits_the_pause(
    redis: RedisServer, learned: bool
) -> None:
    # The 429 is known here at once (the answer), in Redis one round trip later: a send asking for its turn in
    # between must not leave inside the pause (Retry-After: 100 s), rate learned or not.
    a = process(redis)
    try:
        key = pace(a)
        if learned:
            await key._link.cut(0, (2.0, 2.0, 10.0, 150.0, 0.0), None)
        await key.turn(None)
        now = time.monotonic()
        key.throttled(now, now, 100.0)  # the 429's answer, its pause not yet in Redis
        with pytest.raises(WaitTooLong):
            await key.turn(now + 5)
        turn = await key._link.turn(0.5 if learned else 0.0, None, None, floor=key.paused_until - time.monotonic())
        assert turn is not None and turn.reserved and 99 <= turn.wait <= 100
    finally:
        await a.aclose()


async def test_a_send_that_slept_through_its_own_pause_weighs_that_429_before_it_leaves(redis: RedisServer) -> None:
    # The 429 is weighed (cut or not) when its pause ends; a send that slept through the pause in its line must
    # do so before it leaves, or the key goes on at the rate the server just refused (bench shared_rate: 1.5x
    # the bound instead of 1.15x with four processes).
    clock = [1000.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    a = Pacing(RateLimits(redis_url=redis.url), clock=lambda: clock[0], sleep=sleep)
    try:
        key = pace(a)
        await key._link.cut(0, (20.0, 20.0, 10.0, 150.0, 0.0), None)
        sent = await key.turn(None)
        key.throttled(clock[0], sent, 2.0)  # its 429 came back; the pause not yet in Redis
        assert key._pending is not None
        await key.turn(None)
        assert clock[0] >= key.paused_until and key._pending is None
    finally:
        await a.aclose()
