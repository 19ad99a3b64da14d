"""A key's learned rate shared by every process that shares its budgets through Redis.

Each process learning its own rate (`_pacing.KeyPace`) learns its share of the key from the 429s it meets, and
keeps it: when one process of two finishes, the other goes on at half the rate the key allows, and probes for
the rest only slowly. So with the Redis limiter the rate is the key's, kept in Redis (`_redis.PACE_SCRIPT`):

- the cut's parameters (the rate of the last cut, the rate just after it, the recovery's and the probe's
  lengths) and a version, one more at each cut; the answers the server accepted since the cut, all processes
  together (each release of an accepted request adds one), from which every process computes the same rate;
- one send schedule: each send reserves its time in Redis, one interval after the key's previous send,
  whichever process made it, and none before the key's pause ends. So N processes together send at the
  learned rate, not N times it, and when one stops the others take its share at once;
- the accepted answers' times, from which the process whose 429 ends a pause measures what the server took
  from all (the cut is `KeyPace`'s own decision), and publishes its cut only if nobody cut since (one cut per
  wave of 429s, not one per process that met one).

While Redis is in trouble (`RedisBudgets`'s health: one warning, a probe), the process paces alone, from the
rate it last knew times its `fallback_share` (as for the budgets: N processes alone must not send N times the
key's rate), as `KeyPace` does; a budget stays the ceiling and a pause is never undercut either way.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from ._budgets import Clock, Sleep, WaitTooLong
from ._pacing import _HISTORY, KeyPace

__all__ = ["RateLink", "SharedKeyPace", "SharedState", "Turn"]

FRESH = 0.25
"""Seconds a look at Redis stays fresh while nothing is learned: a key no process has cut sends without asking."""


@dataclass(frozen=True)
class SharedState:
    version: int  # 0: nothing learned (or forgotten: Redis restarted, the key idle for an hour)
    n: int  # answers accepted since the cut, all processes together
    params: tuple[float, float, float, float, float]  # w_max, r0, recover, probe, blind (0 or 1)

    @classmethod
    def read(cls, fields: list[Any]) -> SharedState:
        if fields[0] is None or any(f is None for f in fields[2:]):
            return cls(0, 0, (0.0, 0.0, 0.0, 0.0, 0.0))
        w, r0, rec, pr, bl = (float(f) for f in fields[2:])
        return cls(int(fields[0]), int(fields[1] or 0), (w, r0, rec, pr, bl))


@dataclass(frozen=True)
class Turn:
    wait: float  # seconds until the reserved send time
    state: SharedState
    reserved: bool  # False: the wait is past the call's deadline, nothing reserved
    slot: tuple[int, int] | None = None  # reserved with pacing: its time and the next send's (Redis's clock, us)


class RateLink(Protocol):
    """One key's shared rate (`_redis.RateLink`); each call returns None when Redis is in trouble."""

    share: float
    """While Redis is in trouble, the share of the key's rate this process sends at (`fallback_share`)."""

    def usable(self) -> bool: ...

    async def turn(
        self, interval: float, max_wait: float | None, deadline: float | None, woke: bool = False, floor: float = 0.0
    ) -> Turn | None: ...

    def give_back(self, turn: Turn) -> None: ...

    async def view(self, deadline: float | None) -> tuple[SharedState, list[float]] | None: ...

    async def cut(self, version: int, params: tuple[float, ...], deadline: float | None) -> SharedState | None: ...


class SharedKeyPace(KeyPace):
    """`KeyPace` whose rate, cuts and send schedule are the key's in Redis (see the module's docstring)."""

    def __init__(self, link: RateLink, ceiling: float | None, clock: Clock, sleep: Sleep) -> None:
        super().__init__(ceiling, clock, sleep)
        self._link = link
        self._version = 0
        self._synced = -math.inf  # when Redis last told this process the key's state
        self._unpublished = False  # this process cut (alone, or Redis failed on the way) and Redis has not heard

    async def turn(self, deadline: float | None) -> float:
        if not self._link.usable():
            return await super().turn(deadline)
        now = self._clock()
        if self._quiet(now) and not self._waiting:
            return self._sent(now, now)
        self._waiting += 1
        try:
            async with self._line:
                if self._pending is not None and self._clock() >= self.paused_until:
                    await self._settle_shared(deadline)
                if self._unpublished:
                    await self._publish(deadline)
                now = self._clock()
                if self._quiet(now):  # the one before in line just looked
                    return self._sent(now, now)
                woke = False
                while True:
                    interval = 1.0 / self.rate if self.rate else 0.0
                    max_wait = None if deadline is None else max(0.0, deadline - now)
                    # This process's own pause (its 429's Retry-After) is a floor: it reaches Redis one round trip
                    # after the 429, and a turn asked meanwhile would otherwise leave inside it.
                    floor = self.paused_until - now
                    turn = await self._link.turn(interval, max_wait, deadline, woke, floor)
                    if turn is None:
                        break
                    self._adopt(turn.state)
                    if not turn.reserved:
                        raise WaitTooLong(turn.wait, self._reason(now))
                    if turn.wait <= 0:
                        now = self._clock()
                        return self._sent(now, now)
                    try:
                        await self._sleep(turn.wait)
                    except asyncio.CancelledError:
                        # Untaken, the turn would be a hole in the key's schedule for every process (and
                        # callers cancelled one after another would keep the key from sending at all).
                        self._link.give_back(turn)
                        raise
                    # A 429 (here or in another process) may have paused the key while this send slept: one
                    # more round trip, paced sends only, so that its Retry-After is not undercut.
                    woke, now = True, self._clock()
                    if self._pending is not None and now >= self.paused_until:
                        await self._settle_shared(deadline)  # the pause it slept through was this process's
        finally:
            self._waiting -= 1
        return await super().turn(deadline)  # Redis failed on the way: this process paces alone

    def _sent(self, now: float, at: float) -> float:
        sent = super()._sent(now, at)
        if self.rate is not None and self._link.share < 1 and not self._link.usable():
            self._alone()
        return sent

    def _set_rate(self, rate: float) -> None:
        super()._set_rate(rate)
        if self._link.share < 1 and not self._link.usable():
            self._alone()

    def _alone(self) -> None:
        """Paced alone, this process sends at its share of the key's rate, as it spends its share of a budget:
        the learned rate is what all processes together may send, and each now paces without the others."""
        assert self.rate is not None
        gap = 1.0 / self.rate
        self._next_at += gap / self._link.share - gap

    def _quiet(self, now: float) -> bool:
        """Nothing learned anywhere when Redis was asked a moment ago, and no pause: send without asking."""
        fresh = now - self._synced < FRESH
        return fresh and self.rate is None and self._pending is None and now >= self.paused_until

    async def _settle_shared(self, deadline: float | None) -> None:
        """The pause of this process's 429 is over: cut (or not) from what the server accepted from everyone."""
        view = await self._link.view(deadline)
        if view is None:
            self._settle()
            return
        state, ages = view
        if state.version != self._version:  # another process cut since: that cut answers for this 429 too
            self._pending = None
            self._adopt(state)
            return
        now = self._clock()
        self._oks = deque((now - age for age in ages), maxlen=_HISTORY)
        self._settle()
        if self._unpublished:
            await self._publish(deadline)

    async def _publish(self, deadline: float | None) -> None:
        """Publish this process's cut, unless another process cut since the version it was made at (then theirs
        stands). A cut made while Redis was away is published when it is back, not lost to the older one there."""
        params = self._params()
        published = await self._link.cut(self._version, params, deadline)
        if published is not None:
            self._unpublished = False
            self._version = published.version if published.params == params else self._version
            self._adopt(published)

    def _cut(self, measured: float, pause: float) -> None:
        super()._cut(measured, pause)
        self._unpublished = True

    def _params(self) -> tuple[float, float, float, float, float]:
        return (self.w_max, self._r0, self._recover, self._probe, float(self._blind))

    def _adopt(self, state: SharedState) -> None:
        """Take the key's state as Redis holds it: another process's cut, and the answers all accepted since."""
        self._synced = self._clock()
        if state.version == 0:
            # Nothing in Redis (restarted, or the key idle for an hour): what this process learned is published
            # at its next turn (the first to publish wins), so that processes started since do not start blind.
            self._version = 0
            self._unpublished = self.rate is not None
            return
        # A version alone does not name a cut: after Redis forgot the key (a restart) the next cut is version 1
        # again. The parameters tell this process's cut from another's.
        if state.version != self._version or state.params != self._params():
            self._version = state.version
            self.w_max, self._r0, self._recover, self._probe, blind = state.params
            self._blind = blind > 0
            self._n = state.n
            now = self._clock()
            self.cut_at = now  # 429s of requests sent before now are that cut's
            self.paused_until = max(self.paused_until, now)  # its pause is over: the next cut measures from here
            self._pending = None
        elif state.n > self._n and self._pending is None and self.rate is not None:
            self._n = state.n
        else:
            return
        self._grow()
