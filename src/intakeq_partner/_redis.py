"""Budgets kept in Redis, so every process of a deployment spends the same per-key budgets (the `redis` extra).

One short Lua script does the bookkeeping atomically, on Redis's own clock (so the processes' clocks need
not agree). Per key it keeps a sorted set of requests: while a request is in flight its score is a lease in
the future; when it finishes, the score becomes the finishing time. A request may start when, for every
window (count, period), fewer than `count` requests finished within the last `period` or are still in flight.
Counting from the finish, not the start, is what keeps a server that counts *arrivals* from ever seeing one
request too many, however late some of them arrive (the in-process `_Window` follows the same rule).

Why not the `limits` package: its Redis moving window records when a request *starts* and cannot hold a
request open while it is in flight, so near the full budget a request delayed on its way lands in the
server's window beside one sent a full period later (measured in `bench/shared_budget.py`), and it has no
notion of concurrency or of a pause after a 429. The script below is about forty lines and tested here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from . import _constants as C
from ._budgets import Clock, LocalBudgets, RateLimits, Scope, Sleep, Ticket, WaitTooLong, budget_id, safe_url
from ._errors import InvalidRequestError, RateLimiterUnavailableError
from ._secret import Secret
from ._sharedrate import SharedState, Turn

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise InvalidRequestError(
        "RateLimits(redis_url=...) needs the redis package: pip install 'intakeq-partner[redis]'"
    ) from exc

logger = logging.getLogger(C.LOGGER_NAME)

# KEYS: the key's request log (a sorted set), its pause flag, and for the learned rate (PACE_SCRIPT below) its
# accepted answers (a sorted set) and its rate (a hash). ARGV[1] is the operation.
#   acquire token lease_ms concurrency longest_period_ms count1 period1_ms [count2 period2_ms ...]
#     -> {0, n1, n2, ...} when the request may start (and is recorded as in flight), else {wait in ms, n1, ...}
#        (-1: unknown, poll; no counts while the key is paused): n is how many requests each window holds now,
#        this one included if it starts (what a fallback must assume spent, should Redis go away)
#   release token [1]             -> the request finished now (1: it was accepted, not refused)
#   pause ms                      -> no request starts for `ms` (a longer pause already set is kept)
SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
if op == 'release' then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[2])
  if ARGV[3] == '1' and KEYS[4] then  -- accepted (not a 429 nor a 5xx): for the learned rate (PACE_SCRIPT)
    redis.call('ZADD', KEYS[3], now, ARGV[2])
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -2049)
    redis.call('PEXPIRE', KEYS[3], 3600000)
    if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HINCRBY', KEYS[4], 'n', 1) end
  end
  return 0
end
if op == 'pause' then
  local ms = tonumber(ARGV[2])
  if redis.call('PTTL', KEYS[2]) < ms then redis.call('SET', KEYS[2], '1', 'PX', ms) end
  return 0
end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {paused} end
local lease = tonumber(ARGV[3])
local concurrency = tonumber(ARGV[4])
local longest = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local wait = 0
local counts = {0}
if concurrency > 0 and redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') >= concurrency then wait = -1 end
for i = 6, #ARGV, 2 do
  local count = tonumber(ARGV[i])
  local period = tonumber(ARGV[i + 1])
  local since = '(' .. (now - period)
  local n = redis.call('ZCOUNT', KEYS[1], since, '+inf')
  counts[#counts + 1] = n
  if n >= count then
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES', 'LIMIT', n - count, 1)
    local score = tonumber(oldest[2])
    if score > now then
      if wait == 0 then wait = -1 end
    elseif wait >= 0 then
      wait = math.max(wait, score + period - now)
    end
  end
end
if wait ~= 0 then
  counts[1] = wait
  return counts
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], longest + lease)
for i = 2, #counts do counts[i] = counts[i] + 1 end
return counts
"""

# The learned rate of a key, shared by every process (see `_sharedrate.py`). KEYS: its rate (a hash: v, the
# version, one more at each cut; n, the answers accepted since; w, r0, rec, pr, bl, the cut's parameters; next,
# when the next send may leave, in microseconds of Redis's clock), its pause flag, its accepted answers.
#   turn interval_us max_wait_us floor_us [woke]
#                                -> {wait_us, state, 1}: the next send's time, reserved (sends one interval apart
#                                   across processes, none before the pause ends, nor before floor_us from now:
#                                   the caller's own pause, which reaches Redis one round trip after its 429);
#                                   {wait_us, state, 0}: not reserved, the wait is past max_wait_us (-1: none).
#                                   interval 0: no pacing (only the floor). ({..., 1, next_us, at_us} with
#                                   pacing: the time it reserved, and the time it left for the send after it).
#                                   woke: the caller slept until the turn it reserved; unless a pause began
#                                   meanwhile it goes now ({0, state, 1}), else it gets a turn after the pause
#   back next_us at_us           -> a reserved turn at `at_us` not taken (its caller cancelled): given back
#                                   if no send was scheduled after it since (`next` is still `next_us`)
#   view                         -> {state, now_ms, scores of the accepted answers (ms)}
#   cut version w r0 rec pr bl   -> state: the cut is made only if nobody cut since `version` (else theirs stands)
PACE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local op = ARGV[1]
local function state()
  return redis.call('HMGET', KEYS[1], 'v', 'n', 'w', 'r0', 'rec', 'pr', 'bl')
end
if op == 'turn' then
  local interval = tonumber(ARGV[2])
  local limit = tonumber(ARGV[3])
  local floor = tonumber(ARGV[4])
  local wait = 0
  if interval > 0 then
    local at = now + floor
    local paused = redis.call('PTTL', KEYS[2])
    if ARGV[5] == 'woke' and paused <= 0 and floor <= 0 then return {0, state(), 1} end
    if paused > 0 and now + paused * 1000 > at then at = now + paused * 1000 end
    local next = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
    if next > at then at = next end
    wait = at - now
    if limit >= 0 and wait > limit then return {wait, state(), 0} end
    local following = string.format('%.0f', at + interval)
    redis.call('HSET', KEYS[1], 'next', following)
    redis.call('PEXPIRE', KEYS[1], 3600000)
    return {wait, state(), 1, following, string.format('%.0f', at)}
  end
  if floor > 0 then wait = floor end
  if limit >= 0 and wait > limit then return {wait, state(), 0} end
  return {wait, state(), 1}
end
if op == 'back' then
  if redis.call('HGET', KEYS[1], 'next') == ARGV[2] then redis.call('HSET', KEYS[1], 'next', ARGV[3]) end
  return 0
end
if op == 'view' then
  local found = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  local scores = {}
  for i = 2, #found, 2 do scores[#scores + 1] = found[i] end
  return {state(), math.floor(now / 1000), scores}
end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v == tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'v', v + 1, 'n', 0, 'w', ARGV[3], 'r0', ARGV[4], 'rec', ARGV[5], 'pr', ARGV[6],
    'bl', ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], 3600000)
return state()
"""

_FAILURES = (RedisError, OSError, TimeoutError)


class RedisBudgets:
    """Per-key budgets in Redis; this process's own `LocalBudgets` stand in while Redis is in trouble.

    Health is kept per limiter, like a circuit breaker: while Redis answers, every slot goes through it; the
    first failure (an error, or no answer within REDIS_OP_TIMEOUT or half the time the call has left) opens
    it: one warning, and every caller uses the fallback at once, without asking Redis, while one background
    probe (a PING on a fresh connection, REDIS_OP_TIMEOUT at most) checks it at growing intervals. When the
    probe is answered the shared budgets are used again (one more warning), on fresh connections: the
    pooled ones may be stale (a restarted Redis), and a failure seen on them counts for the outage already
    known, not as another. Nothing waits on Redis past a call's deadline: releases and pauses are sent in
    the background, bounded, and an acquire given up on is released in the background too.

    Budget: each acquire tells how many requests each window of the key holds, all processes together; on
    falling back, this process assumes its share (`fallback_share`) of those spent already, so the switch
    sends nothing beyond the budget. And after Redis is back, for the longest window configured plus the
    time the other processes may take to see it back, each slot also passes the fallback's budget, since
    Redis knows nothing of what was spent meanwhile (a restarted Redis knows nothing at all).
    """

    def __init__(self, limits: RateLimits, *, clock: Clock, sleep: Sleep) -> None:
        assert limits.redis_url is not None
        self.limits = limits
        self._url = limits.redis_url
        self._clock = clock
        self._sleep = sleep
        self.fallback = LocalBudgets(limits.scaled(limits.fallback_share), clock=clock, sleep=sleep)
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._pace_script: Any = None
        self.healthy = True  # False from a failure until the probe is answered
        self._outage = 0  # outages so far; a failure during one (or on a client from before it) adds nothing
        self._probe: asyncio.Task[None] | None = None
        self._settle_until = float("-inf")  # (clock) until when slots also pass the fallback, after an outage
        self._background: set[asyncio.Task[Any]] = set()  # releases, pauses and closes under way
        self._closed = False  # aclose() began: a failure seen now starts no probe (nothing would stop it)
        # One caller per key and process asks Redis at a time; the others queue here (no herd of pollers).
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}
        self.fallbacks = 0  # slots served by the fallback (for tests and monitoring)
        self.outages = 0  # outages seen (each one warning pair)
        longest = [rate.per for rate in (*limits.partner, *limits.practice)]
        self._longest = max(longest, default=0.0)

    def _connect(self) -> aioredis.Redis:
        # No retries inside redis-py: a failure must reach us at once so that we can fall back.
        return aioredis.Redis.from_url(
            self._url,
            socket_timeout=C.REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=C.REDIS_CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )

    def _redis(self) -> Any:
        if self._client is None:
            self._use(self._connect())
        return self._script

    def _use(self, client: aioredis.Redis) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._pace_script = client.register_script(PACE_SCRIPT)

    def _names(self, key: Secret, scope: Scope) -> list[str]:
        # The braces make both names hash to one Redis Cluster slot, as a script's keys must.
        base = f"{self.limits.redis_prefix}:{{{scope}:{budget_id(key)}}}"
        return [f"{base}:log", f"{base}:pause", f"{base}:ok", f"{base}:rate"]

    def _unavailable(self, exc: BaseException | None) -> RateLimiterUnavailableError:
        what = "did not answer in time" if exc is None or isinstance(exc, TimeoutError) else "is unreachable"
        name = "" if exc is None else f" ({type(exc).__name__})"
        return RateLimiterUnavailableError(f"the shared rate limiter at {safe_url(self._url)} {what}{name}")

    def _failed(self, exc: BaseException, outage: int) -> None:
        """Redis failed a request made during `outage` (the count then): open the breaker, once per outage."""
        if outage != self._outage or not self.healthy or self._closed:
            return  # a stale connection of an outage already known, one already being probed, or closing
        self.fallback.assume_spent(self.limits.fallback_share)
        self.healthy = False
        self._outage += 1
        self.outages += 1
        logger.warning(
            "%s; using this process's own budgets, and checking it in the background", self._unavailable(exc)
        )
        client, self._client, self._script = self._client, None, None
        if client is not None:
            self._spawn(_close(client))  # its pooled connections may be stale: never used again
        self._probe = asyncio.ensure_future(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        """The one probe: a PING on a fresh connection, at growing intervals, until Redis answers."""
        delay = C.REDIS_FIRST_PROBE
        while True:
            await asyncio.sleep(delay * (0.75 + random.random() / 2))
            client = self._connect()
            try:
                async with asyncio.timeout(C.REDIS_OP_TIMEOUT):
                    await client.ping()
            except Exception:  # whatever went wrong, Redis is not back: the probe goes on
                self._spawn(_close(client))
                delay = min(delay * 1.5, C.REDIS_RETRY_INTERVAL)
                continue
            self._use(client)
            self.fallback.shared_again()
            self.healthy = True
            self._probe = None
            # Until every other process has seen Redis back too (its probe may come REDIS_RETRY_INTERVAL later)
            # and what each spent meanwhile has left the windows, this one keeps to its share as well.
            self._settle_until = self._clock() + self._longest + C.REDIS_RETRY_INTERVAL * 1.25 + C.REDIS_OP_TIMEOUT
            logger.warning("the shared rate limiter at %s is reachable again", safe_url(self._url))
            return

    def _keep_probing(self) -> None:
        """Start the probe again if it is gone: its event loop ended (a client used from a new loop, say)."""
        probe = self._probe
        if probe is None or probe.done() or probe.get_loop() is not asyncio.get_running_loop():
            self._probe = asyncio.ensure_future(self._probe_until_back())

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `work` in the background, keeping it referenced until it ends."""
        task = asyncio.ensure_future(work)  # each bounds itself (REDIS_OP_TIMEOUT) and handles Redis's failures
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_retrieved)
        return task

    def _poll(self, scope: Scope) -> float:
        """How long to wait when the wait is unknown (the request that must finish first is in flight)."""
        rates = self.limits.rates(scope)
        step = min((rate.per / rate.count for rate in rates), default=0.05) / 4
        return min(0.05, max(0.002, step)) * (0.5 + random.random())

    @contextlib.asynccontextmanager
    async def _turn(self, name: str, deadline: float | None) -> AsyncIterator[None]:
        lock, users = self._turns.get(name) or (asyncio.Lock(), 0)
        self._turns[name] = (lock, users + 1)
        try:
            if deadline is None:
                await lock.acquire()
            else:
                remaining = deadline - self._clock()
                try:
                    async with asyncio.timeout(max(0.0, remaining)):
                        await lock.acquire()
                except TimeoutError:
                    raise WaitTooLong(remaining, "the key's budget is spent") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._turns[name]
            if users == 1:
                del self._turns[name]
            else:
                self._turns[name] = (lock, users - 1)

    async def _ask(self, script: Any, names: list[str], args: list[Any], deadline: float | None) -> list[int]:
        """One round trip, given up (TimeoutError) after REDIS_OP_TIMEOUT, or sooner when the call has less
        time left: half of it, but not under REDIS_MIN_OP_TIMEOUT (a healthy Redis answers in a millisecond,
        and a busy event loop must not pass for a Redis in trouble)."""
        async with asyncio.timeout(self._op_timeout(deadline)):
            return [int(n) for n in await script(keys=names, args=args)]

    def _op_timeout(self, deadline: float | None) -> float:
        limit = C.REDIS_OP_TIMEOUT
        if deadline is not None:
            limit = min(limit, max(C.REDIS_MIN_OP_TIMEOUT, (deadline - self._clock()) / 2))
        return limit

    async def _acquire(self, key: Secret, names: list[str], token: str, scope: Scope, deadline: float | None) -> bool:
        """Take a place in Redis (True), or find Redis in trouble (False: use the fallback)."""
        rates = self.limits.rates(scope)
        args: list[Any] = [
            "acquire",
            token,
            int(C.REDIS_LEASE * 1000),
            self.limits.concurrency or 0,
            max((int(rate.per * 1000) for rate in rates), default=1000),
        ]
        for rate in rates:
            args += [rate.count, int(rate.per * 1000)]
        async with self._turn(names[0], deadline):
            while True:
                if not self.healthy:  # it failed while we queued: do not ask again, the probe will
                    return False
                outage, script = self._outage, self._redis()
                try:
                    reply = await self._ask(script, names, args, deadline)
                except _FAILURES as exc:
                    self._spawn(self._release(script, names, token, outage))  # in case it was recorded
                    self._failed(exc, outage)
                    if self.limits.on_redis_error == "fail":
                        raise self._unavailable(exc) from None
                    return False
                except asyncio.CancelledError:
                    self._spawn(self._release(script, names, token, outage))  # the call ended meanwhile
                    raise
                wait_ms = reply[0]
                if len(reply) > 1:
                    self.fallback.seen(key, scope, reply[1:])
                if wait_ms == 0:
                    return True
                wait = wait_ms / 1000 if wait_ms > 0 else self._poll(scope)
                if deadline is not None and self._clock() + wait > deadline:
                    raise WaitTooLong(wait, "the key's budget is spent or paused")
                await self._sleep(wait)

    async def _release(self, script: Any, names: list[str], token: str, outage: int, accepted: bool = False) -> None:
        try:
            async with asyncio.timeout(C.REDIS_OP_TIMEOUT):
                await script(keys=names, args=["release", token, "1" if accepted else "0"])
        except _FAILURES as exc:
            # The request is over either way; the lease frees its place in Redis if Redis comes back.
            self._failed(exc, outage)

    @contextlib.asynccontextmanager
    async def slot(self, key: Secret, scope: Scope, deadline: float | None) -> AsyncIterator[Ticket | None]:
        if not self.healthy:
            self._keep_probing()
            if self.limits.on_redis_error == "fail":
                raise self._unavailable(None)
            self.fallbacks += 1
            async with self.fallback.slot(key, scope, deadline):
                yield None
            return
        async with contextlib.AsyncExitStack() as stack:
            settling = self._clock() < self._settle_until
            if settling:  # just back: what this process spent meanwhile still counts, Redis knows nothing of it
                await stack.enter_async_context(self.fallback.slot(key, scope, deadline))
            names = self._names(key, scope)
            token = secrets.token_hex(8)
            if not await self._acquire(key, names, token, scope, deadline):
                self.fallbacks += 1
                if not settling:
                    await stack.enter_async_context(self.fallback.slot(key, scope, deadline))
                yield None
                return
            outage, script = self._outage, self._script
            ticket = Ticket()
            try:
                yield ticket
            finally:
                # Not awaited: a slow Redis must not hold the caller past its deadline (the lease bounds it).
                self._spawn(self._release(script, names, token, outage, ticket.accepted))

    async def pause(self, key: Secret, scope: Scope, retry_after: float | None) -> float:
        seconds = await self.fallback.pause(key, scope, retry_after)  # also known here, should Redis go away
        if self.healthy:
            ms = max(1, int(self.limits.pause_length(retry_after) * 1000))
            task = self._spawn(self._pause(self._redis(), self._names(key, scope), ms, self._outage))
            # Awaited (so that what follows sees the pause), but not past its bound, nor past the call's end:
            # cancelling this wait leaves the pause on its way.
            await asyncio.wait({task}, timeout=C.REDIS_OP_TIMEOUT)
        return seconds

    async def _pause(self, script: Any, names: list[str], ms: int, outage: int) -> None:
        try:
            async with asyncio.timeout(C.REDIS_OP_TIMEOUT):
                await script(keys=names, args=["pause", ms])
        except _FAILURES as exc:
            self._failed(exc, outage)

    def rate_link(self, key: Secret, scope: Scope) -> RateLink:
        """The key's learned rate as every process shares it (`_sharedrate.SharedKeyPace` uses it)."""
        return RateLink(self, self._names(key, scope))

    async def pace(self, names: list[str], args: list[Any], deadline: float | None) -> Any:
        """One round trip of PACE_SCRIPT, or None when Redis is in trouble (then the pacing is this process's)."""
        if not self.healthy or self._closed:
            if not self._closed:
                self._keep_probing()
            return None
        outage = self._outage
        self._redis()
        try:
            async with asyncio.timeout(self._op_timeout(deadline)):
                return await self._pace_script(keys=names, args=args)
        except _FAILURES as exc:
            self._failed(exc, outage)
            return None

    def spawn_pace(self, names: list[str], args: list[Any]) -> None:
        """`pace` in the background (for a caller that is being cancelled), bounded by REDIS_OP_TIMEOUT."""
        if self.healthy and not self._closed:
            self._spawn(self.pace(names, args, None))

    async def aclose(self) -> None:
        self._closed = True
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        if self._background:  # releases under way: given a moment (each is bounded), then dropped
            await asyncio.wait(set(self._background), timeout=C.REDIS_OP_TIMEOUT)
            for task in list(self._background):
                task.cancel()
        if self._client is not None:
            client, self._client = self._client, None
            await _close(client)


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Nobody awaits a background task: read its outcome so that asyncio logs nothing about it."""
    if not task.cancelled():
        task.exception()


async def _close(client: aioredis.Redis) -> None:
    with contextlib.suppress(*_FAILURES):
        async with asyncio.timeout(C.REDIS_OP_TIMEOUT):
            await client.aclose()


class RateLink:
    """One key's learned rate in Redis, as `_sharedrate.SharedKeyPace` reads and writes it."""

    def __init__(self, budgets: RedisBudgets, names: list[str]) -> None:
        self._budgets = budgets
        self.share = budgets.limits.fallback_share
        self._names = [names[3], names[1], names[2]]  # PACE_SCRIPT's KEYS: the rate, the pause, the accepted

    def usable(self) -> bool:
        return self._budgets.healthy

    async def turn(
        self, interval: float, max_wait: float | None, deadline: float | None, woke: bool = False, floor: float = 0.0
    ) -> Turn | None:
        """Reserve the key's next send, `interval` seconds after the one before (0: no pacing); None: Redis failed.
        `woke`: the caller slept until its reserved turn; a new turn only if a pause began meanwhile. `floor`:
        seconds before which the send may not leave in any case (this process's own pause, not yet in Redis)."""
        limit = -1 if max_wait is None else round(max_wait * 1e6)
        args = ["turn", round(interval * 1e6), limit, round(max(0.0, floor) * 1e6)]
        if woke:
            args.append("woke")
        reply = await self._budgets.pace(self._names, args, deadline)
        if reply is None:
            return None
        slot = (int(reply[4]), int(reply[3])) if len(reply) > 4 else None
        return Turn(int(reply[0]) / 1e6, SharedState.read(reply[1]), reply[2] == 1, slot)

    def give_back(self, turn: Turn) -> None:
        """A reserved turn its caller will not take (cancelled): the next send may have it (in the background)."""
        if turn.slot is not None:
            at, following = turn.slot
            self._budgets.spawn_pace(self._names, ["back", following, at])

    async def view(self, deadline: float | None) -> tuple[SharedState, list[float]] | None:
        """The shared state and the ages (seconds) of the accepted answers Redis holds, oldest first."""
        reply = await self._budgets.pace(self._names, ["view"], deadline)
        if reply is None:
            return None
        now = int(reply[1])
        return SharedState.read(reply[0]), [(now - float(score)) / 1000 for score in reply[2]]

    async def cut(self, version: int, params: tuple[float, ...], deadline: float | None) -> SharedState | None:
        """Publish a cut made at `version`; what Redis holds after it (another process's cut if it came first)."""
        args: list[Any] = ["cut", version, *(repr(float(p)) for p in params)]
        reply = await self._budgets.pace(self._names, args, deadline)
        return None if reply is None else SharedState.read(reply)
