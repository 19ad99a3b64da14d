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
from collections.abc import AsyncIterator
from typing import Any

from . import _constants as C
from ._budgets import Clock, LocalBudgets, RateLimits, Scope, Sleep, WaitTooLong, budget_id, safe_url
from ._errors import InvalidRequestError, RateLimiterUnavailableError
from ._secret import Secret

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

# KEYS: the key's request log (a sorted set) and its pause flag. ARGV[1] is the operation.
#   acquire token lease_ms concurrency longest_period_ms count1 period1_ms [count2 period2_ms ...]
#     -> 0 when the request may start (and is recorded as in flight), else the wait in ms (-1: unknown, poll)
#   release token                 -> the request finished now
#   pause ms                      -> no request starts for `ms` (a longer pause already set is kept)
SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
if op == 'release' then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[2])
  return 0
end
if op == 'pause' then
  local ms = tonumber(ARGV[2])
  if redis.call('PTTL', KEYS[2]) < ms then redis.call('SET', KEYS[2], '1', 'PX', ms) end
  return 0
end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local lease = tonumber(ARGV[3])
local concurrency = tonumber(ARGV[4])
local longest = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local wait = 0
if concurrency > 0 and redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') >= concurrency then wait = -1 end
for i = 6, #ARGV, 2 do
  local count = tonumber(ARGV[i])
  local period = tonumber(ARGV[i + 1])
  local since = '(' .. (now - period)
  local n = redis.call('ZCOUNT', KEYS[1], since, '+inf')
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
if wait ~= 0 then return wait end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], longest + lease)
return 0
"""

_FAILURES = (RedisError, OSError)


class RedisBudgets:
    """Per-key budgets in Redis; this process's own `LocalBudgets` stand in while Redis cannot be reached."""

    def __init__(self, limits: RateLimits, *, clock: Clock, sleep: Sleep) -> None:
        assert limits.redis_url is not None
        self.limits = limits
        self._url = limits.redis_url
        self._clock = clock
        self._sleep = sleep
        self.fallback = LocalBudgets(limits.scaled(limits.fallback_share), clock=clock, sleep=sleep)
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._down_until: float | None = None  # while set, use the fallback until this time, then try again
        # One caller per key and process asks Redis at a time; the others queue here (no herd of pollers).
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}
        self.fallbacks = 0  # slots served by the fallback (for tests and monitoring)

    def _redis(self) -> Any:
        if self._client is None:
            # No retries inside redis-py: a failure must reach us at once so that we can fall back.
            self._client = aioredis.Redis.from_url(
                self._url,
                socket_timeout=C.REDIS_SOCKET_TIMEOUT,
                socket_connect_timeout=C.REDIS_CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            self._script = self._client.register_script(SCRIPT)
        return self._script

    def _names(self, key: Secret, scope: Scope) -> list[str]:
        # The braces make both names hash to one Redis Cluster slot, as a script's keys must.
        base = f"{self.limits.redis_prefix}:{{{scope}:{budget_id(key)}}}"
        return [f"{base}:log", f"{base}:pause"]

    def _available(self) -> bool:
        return self._down_until is None or self._clock() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        """Redis could not be used: fail closed, or fall back (warning once per outage)."""
        reason = f"the shared rate limiter at {safe_url(self._url)} is unreachable ({type(exc).__name__})"
        if self.limits.on_redis_error == "fail":
            raise RateLimiterUnavailableError(reason) from None
        if self._down_until is None:
            logger.warning("%s; using this process's own budgets until it is back", reason)
        self._down_until = self._clock() + C.REDIS_RETRY_INTERVAL

    def _recovered(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            logger.warning("the shared rate limiter at %s is reachable again", safe_url(self._url))

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

    async def _acquire(self, names: list[str], token: str, scope: Scope, deadline: float | None) -> None:
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
        script = self._redis()
        async with self._turn(names[0], deadline):
            while True:
                wait_ms = int(await script(keys=names, args=args))
                if wait_ms == 0:
                    return
                wait = wait_ms / 1000 if wait_ms > 0 else self._poll(scope)
                if deadline is not None and self._clock() + wait > deadline:
                    raise WaitTooLong(wait, "the key's budget is spent or paused")
                await self._sleep(wait)

    @contextlib.asynccontextmanager
    async def slot(self, key: Secret, scope: Scope, deadline: float | None) -> AsyncIterator[None]:
        names = self._names(key, scope)
        token = secrets.token_hex(8)
        shared = self._available()
        if shared:
            try:
                await self._acquire(names, token, scope, deadline)
            except _FAILURES as exc:
                self._failed(exc)
                shared = False
            else:
                self._recovered()
        if not shared:
            self.fallbacks += 1
            async with self.fallback.slot(key, scope, deadline):
                yield
            return
        try:
            yield
        finally:
            try:
                await self._redis()(keys=names, args=["release", token])
            except _FAILURES as exc:
                # The request is over either way; the lease frees its place in Redis if Redis comes back.
                with contextlib.suppress(RateLimiterUnavailableError):
                    self._failed(exc)

    async def pause(self, key: Secret, scope: Scope, retry_after: float | None) -> float:
        seconds = await self.fallback.pause(key, scope, retry_after)  # also known here, should Redis go away
        if self._available():
            ms = max(1, int(self.limits.pause_length(retry_after) * 1000))
            try:
                await self._redis()(keys=self._names(key, scope), args=["pause", ms])
            except _FAILURES as exc:
                with contextlib.suppress(RateLimiterUnavailableError):
                    self._failed(exc)
        return seconds

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(*_FAILURES):
                await client.aclose()
