"""Request budgets: how many requests may start, and when, so that IntakeQ's rate limits are never hit.

The transport asks `Budgets.slot(key)` before every attempt; everything about pacing lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from ._secret import Secret

__all__ = ["Budgets"]


class _RateLimiter:
    """At most `rate` starts a second, evenly spaced, and never more than `rate` requests in any one second as
    the server counts them, however late some of them arrive.

    Even spacing alone is not enough: a request delayed on its way (a new connection, a busy event loop) can
    land in the same server-side second as one sent a full second later, and a sliding-window limiter then
    answers 429. So start number k also waits until request k - floor(rate) has *finished*, plus one second:
    that request arrived before it finished, so the two can never fall in one window. Reserving a slot is
    synchronous, so no lock is needed.
    """

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]) -> None:
        self._interval = 1.0 / rate
        self._window = max(1, math.floor(rate))
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        # When each of the last `_window` requests finished (a future until it has), oldest first.
        self._ends: deque[asyncio.Future[float]] = deque()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for this request's turn; hold the slot while it is in flight."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self._interval
        end: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        earlier = self._ends.popleft() if len(self._ends) >= self._window else None
        self._ends.append(end)
        sent = False
        try:
            if start > now:
                await self._sleep(start - now)
            if earlier is not None:
                finished = await asyncio.shield(earlier)
                wait = finished + 1.0 - max(self._clock(), start)
                if wait > 0:
                    await self._sleep(wait)
            sent = True
            yield
        finally:
            # Also on failure or cancellation: whoever waits on this slot must not wait forever.
            if not end.done():
                if not sent and earlier is not None and not earlier.done():
                    # Cancelled before sending: the one who waits on us inherits our wait for `earlier`,
                    # or it could start while `earlier` is still in flight.
                    earlier.add_done_callback(lambda f: _pass_on(f, end))
                elif not sent and earlier is not None:
                    end.set_result(earlier.result())
                else:
                    end.set_result(self._clock())


def _pass_on(earlier: asyncio.Future[float], end: asyncio.Future[float]) -> None:
    if not end.done():
        end.set_result(earlier.result())


class Budgets:
    """Every limit a transport applies before sending: today the one rate shared by all keys."""

    def __init__(
        self, *, rate_limit: float | None, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        self._shared = _RateLimiter(rate_limit, clock, sleep) if rate_limit else None

    @contextlib.asynccontextmanager
    async def slot(self, key: Secret) -> AsyncIterator[None]:
        """Wait until a request with `key` may start; hold what it spends while it is in flight."""
        if self._shared is None:
            yield
        else:
            async with self._shared.slot():
                yield
