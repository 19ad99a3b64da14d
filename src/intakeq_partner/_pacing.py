"""Adaptive pacing per key: the rate a key may send at, learned from the 429s it meets.

Without a configured budget the client finds IntakeQ's limit only by hitting it. So each key that has met a
429 gets a sending rate, in the manner of the AWS SDKs' "adaptive" retry mode and TCP CUBIC: a 429 cuts the
rate to `BETA` times the rate the server was actually accepting, then every successful answer lets it grow
back: quickly at first, levelling off at the rate where the last cut happened, and only then, slowly, past it
to probe for more. The probe's length is counted in answers, not seconds, and scales with what one 429 costs
(the pause, times the rate), so that the same rules fit "10 a minute" and "50 a second" alike.

The sends of a key leave one at a time at that rate, so when a pause ends the waiting calls go out one
interval apart, not all at once (no herd). A pause from a 429 holds every send of the key that has not left
yet (a Retry-After is never undercut); a call waits for it once, in its place in the line, not once for the
pause and again for a budget it had already waited for. A configured `RateLimits` budget is the ceiling: the
learned rate never grows past the fastest window of the key's budget, whose windows still apply as well.

A 429 that the rate cannot explain (the rate is still below where the last cut happened, and the answers
accepted since the last pause kept pace with it, or it came within a pause's length of the last pause, unless
`_SHORTS` do in a row) pauses the key without cutting the rate again: sporadic 429s cost their pause, not a
collapsing rate. With a budget, a 429 overrules it only when, twice in a row, the server took less than `BETA`
of it over the last few pauses' length. With the Redis limiter the rate is the key's, shared by the
processes (`_sharedrate.SharedKeyPace`, made here when the budgets offer a `rate_link`).

Before its first 429 a key with no configured budget is in slow start, as a TCP connection is: it may have only
`window` sends in flight, one at first, and the window doubles every `SLOW_START_DOUBLING` answers accepted
while callers wait for it (so that against a limit of about ten a window, IntakeQ's, the first 429 meets one or
two sends on their way, not twenty). Slow start ends at the first 429 that shows the limit (a send that left
after the refused one was refused too, or a second lone one), and the learned rate takes over from what the
server accepted; a 429 that a later, accepted send disproves, or a first lone one, is a pause only; a cut with
nothing accepted starts slow start over. It also ends once widening stops paying: the window is wide
(`SLOW_START_END`), or doubling it no longer raised the rate of answers by a quarter. Sequential callers never
wait for it. A configured budget skips it (the budget's windows already say how fast to go), and so do a
configured `concurrency` (it is the window) and the rate shared through Redis.

`Pacing` is the transport's one door to the budgets: `slot(...)` before each attempt (its context value is
called with the attempt's outcome), `pause(...)` on a 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

import httpx

from ._budgets import Budgets, Clock, RateLimits, Scope, Sleep, WaitTooLong, budget_id, make_budgets
from ._errors import parse_retry_after
from ._secret import Secret

__all__ = ["BETA", "KeyPace", "Pacing", "ceiling"]

BETA = 0.7
"""A 429 cuts the rate to this share of what the server was accepting (CUBIC's and the AWS SDKs' value)."""
GROWTH = 0.4
"""CUBIC's scale constant: how steeply the rate grows once past the rate of the last cut."""
MARGIN = 0.95
"""Growth levels off this far below the rate the server accepted when it refused: at exactly that rate a
sliding window refuses whenever two sends come a hair closer than their interval."""
SLOW_START_DOUBLING = 8
"""Answers accepted (while callers waited for the window) per doubling of the slow-start window."""
SLOW_START_END = 64
"""A window this wide ends slow start: wider than any useful number of sends in flight on one key."""
_SS_MIN_CHECK = 8  # the window from which slow start ends if a doubling did not raise the answers' rate by 1/4
_MIN_SPAN = 1.0  # seconds: the shortest stretch a rate is measured over (a Retry-After may be 0)
_SHORTS = 3  # 429s in a row, each within a pause's length of the last pause, that cut a rate below the last cut
_BUDGET_SPAN = 5  # pauses' worth of time over which a 429 is weighed against a configured budget
_HISTORY = 2048  # answers remembered per key, to measure the rate the server accepted
_T = TypeVar("_T")


class KeyPace:
    """One key's learned rate, its pause, and the line of sends waiting for their turn."""

    def __init__(self, ceiling: float | None, clock: Clock, sleep: Sleep) -> None:
        self.ceiling = ceiling
        self.rate: float | None = None
        """Sends a second; None until the key meets its first 429 (then no pacing at all)."""
        self.w_max = 0.0  # what the server accepted when the last cut happened: growth levels off just below
        self._r0 = 0.0  # the rate right after the last cut
        self._n = 0  # successful answers since the last cut
        self._recover = 10.0  # answers to grow back from the cut to w_max
        self._probe = 150.0  # answers over which growth past w_max reaches 40%
        self._blind = False  # cut with nothing to measure: grow by a share per answer until the next 429
        self._fluke = False  # slow start met a 429 with nothing sent after it: a pause, once
        self.cut_at = -math.inf  # when the last 429 came back
        self._pending: tuple[float, float, float] | None = None  # that 429, while its pause lasts
        self._refused_sent = -math.inf  # when the pending 429's request left
        self._followers_refused = 0  # requests that left after it and met a 429 too
        self._shorts = 0  # 429s in a row that came within a pause's length of the previous pause's end
        self._doubts = 0  # 429s in a row that found the server taking less than 0.7 of the configured budget
        self.paused_until = -math.inf
        self._next_at = -math.inf
        self._last_sent = -math.inf
        self._first_sent = -math.inf
        self._oks: deque[float] = deque(maxlen=_HISTORY)
        self._line = asyncio.Lock()  # FIFO: the one holding it is the next to go
        self._waiting = 0
        self._clock = clock
        self._sleep = sleep
        self.slow_start = ceiling is None
        """Whether the key starts (and, when nothing got through at a cut, starts over) in slow start."""
        self.window: float | None = 1.0 if self.slow_start else None
        """Slow start: sends allowed in flight before the first 429 (None: no slow start, or it has ended)."""
        self.in_flight = 0
        self._freed = asyncio.Event()  # set when a send's answer (or the end of slow start) may free the line
        self._widened = 0  # doublings' worth of widening so far, in answers
        self._mark: tuple[float, int, float] | None = None  # (when, answers, their rate) at the last doubling
        self._answers = 0

    def forgettable(self, now: float) -> bool:
        """Nobody waiting, no pause, and nothing learned (or unused for an hour): forgetting it loses nothing."""
        idle = not self._waiting and not self.in_flight and now >= self.paused_until
        return idle and (self.rate is None or self._last_sent < now - 3600)

    # ----- sending

    async def turn(self, deadline: float | None) -> float:
        """Wait until this key may send (its pause over, one interval after the last send); returns when."""
        now = self._clock()
        if self._pending is not None and now >= self.paused_until:
            self._settle()
        if not self._waiting and now >= self._next_at and now >= self.paused_until and not self._full():
            return self._sent(now, now)
        if deadline is not None:
            ahead = self._waiting / self.rate if self.rate else 0.0
            start = max(now, self._next_at, self.paused_until) + ahead
            if start > deadline:
                raise WaitTooLong(start - now, self._reason(now))
        self._waiting += 1
        try:
            async with self._line:
                slept_until = None
                while True:  # again after a sleep only if a 429 meanwhile moved the time
                    now = self._clock()
                    if self._pending is not None and now >= self.paused_until:
                        self._settle()
                    if self._full():  # slow start: wait for an answer to free a place in the window
                        self._freed.clear()
                        await self._freed.wait()
                        continue
                    at = max(self._next_at, self.paused_until)
                    # Slept once until `at` already: go, even if the clock says otherwise (a sleep that does not
                    # move the clock it is given, as in tests, must not make this loop spin).
                    if at <= now or at == slept_until:
                        # (A rate that grew while we slept moved `at` earlier: the beat counts from the wake-up.)
                        return self._sent(now, at if slept_until is None else max(at, slept_until))
                    if deadline is not None and at > deadline:
                        raise WaitTooLong(at - now, self._reason(now))
                    slept_until = at
                    await self._sleep(at - now)
        finally:
            self._waiting -= 1

    def _reason(self, now: float) -> str:
        return "the key is paused after a 429" if self.paused_until > now else "the key is paced after 429s"

    def _full(self) -> bool:
        return self.window is not None and self.rate is None and self.in_flight >= int(self.window)

    def _sent(self, now: float, at: float) -> float:
        self.in_flight += 1
        if self._last_sent == -math.inf:
            self._first_sent = now
        self._last_sent = now
        if self.rate is not None:
            gap = 1.0 / self.rate
            # Late by a little: the next one keeps the beat; later than that, no catching up. "A little" is a quarter
            # of an interval: the slack that growth leaving off at MARGIN of the refused rate leaves in a window of
            # ten sends (a send a whole interval late followed by one on the beat put eleven in a window of ten).
            self._next_at = (at + gap) if now - at < gap / 4 else (now + gap)
        return now

    # ----- answers

    def done(self) -> None:
        """A send is over (answered, failed or cancelled): its place in the slow-start window is free."""
        self.in_flight -= 1
        self._freed.set()

    def _end_slow_start(self) -> None:
        self.window = None
        self._freed.set()

    def _widen(self) -> None:
        """Slow start: an answer accepted while callers waited for the window widens it (doubling every
        `SLOW_START_DOUBLING`); each doubling, widening must have paid (the answers came faster) to go on."""
        assert self.window is not None
        self._answers += 1
        if not self._waiting:
            return  # the window was wide enough for what was asked of it: widening would not pay
        self.window *= 2 ** (1 / SLOW_START_DOUBLING)
        self._widened += 1
        if self._widened % SLOW_START_DOUBLING:
            return
        now = self._clock()
        if self._mark is not None:
            since, answers, previous = self._mark
            rate = (self._answers - answers) / (now - since) if now > since else math.inf
            if self.window >= SLOW_START_END or (self.window >= _SS_MIN_CHECK and rate < 1.25 * previous):
                self._end_slow_start()
                return
            self._mark = (now, self._answers, rate)
        else:
            self._mark = (now, self._answers, 0.0)

    def succeeded(self, sent_at: float) -> None:
        """A request sent at `sent_at` was answered (not with a 429): the rate grows, one answer's worth."""
        self._oks.append(sent_at)
        if self.rate is None and self.window is not None and self._pending is None:
            self._widen()
        if self.rate is None or self._pending is not None:
            return
        self._n += 1
        self._grow()

    def _grow(self) -> None:
        """The rate after `_n` answers since the last cut."""
        n = self._n
        if self._blind:
            # No idea of the limit yet: grow by a quarter an answer until the next 429.
            rate = self._r0 * 1.25 ** min(n, 200)
        elif n < self._recover:
            plateau = MARGIN * self.w_max
            rate = plateau - (plateau - self._r0) * (1 - n / self._recover) ** 3
        else:
            rate = MARGIN * self.w_max * (1 + GROWTH * ((n - self._recover) / self._probe) ** 3)
        self._set_rate(rate)

    def throttled(self, now: float, sent_at: float, pause: float) -> None:
        """A 429 for a request sent at `sent_at`: the key pauses for `pause` seconds; whether the rate is cut
        is weighed when the pause ends, once the answers to the requests sent with it are in."""
        previous_end = self.paused_until
        self.paused_until = max(self.paused_until, now + pause)
        if self._pending is not None and sent_at >= self._refused_sent:
            self._followers_refused += 1
        if sent_at < self.cut_at or self._pending is not None:
            return  # sent before the last 429 came back, at the rate of then: that 429 answers for it
        if pause <= 0:
            return  # "Retry-After: 0": the server asks for no wait, so it is not refusing the rate
        self._pending = (now, pause, previous_end)
        self._refused_sent = sent_at
        self._followers_refused = 0
        self.cut_at = now

    def _settle(self) -> None:
        assert self._pending is not None
        when, pause, previous_end = self._pending
        self._pending = None
        if self.window is not None and self.rate is None:
            # In slow start. A request that left after the refused one was accepted: the server was not full,
            # this 429 was not the limit's (a pause, and slow start goes on). One that left after it was refused
            # too: the limit is found, and the rate learned from what the server accepted takes over. Nothing
            # left after it (the window was one send): a pause the first time, the limit the second.
            if self._oks and self._oks[-1] > self._refused_sent:
                return
            if not self._followers_refused and not self._fluke:
                self._fluke = True
                return
            self._end_slow_start()
            self._cut(self._accepted(when, max(pause, _MIN_SPAN)), pause)
            return
        span = max(pause, _MIN_SPAN)  # what a Retry-After of 0 (or a tiny one) is measured over
        if self.ceiling is not None:
            # A budget is set: the question is only whether it is too high. Over several pauses' length
            # (pauses included: a server's window refills during them), did the server take about what the
            # budget allows? Then the budget is right, this 429 was not the rate's doing, and the budget's
            # windows go on pacing: after a pause they let through no more than the server's own window,
            # drained by the same pause, accepts. The budget is the user's word: it is overruled only when two
            # 429s in a row say so (a cluster of sporadic ones, their pauses counted, reads like a low limit).
            if when - self._first_sent < _BUDGET_SPAN * span:
                return
            if self._accepted(when, _BUDGET_SPAN * span) >= BETA * self.ceiling:
                self._doubts = 0
                return
            self._doubts += 1
            if self._doubts < 2:
                return
            if self.rate is None:  # the budget overruled: by what the server took over the same stretch
                self._cut(max(self._accepted(when, span), self._accepted(when, _BUDGET_SPAN * span)), pause)
                return
        if self.rate is None:
            # The first: what the server accepted over the pause's length (a window's worth, with a sliding one).
            measured = self._accepted(when, span)
        elif self._blind or self.rate >= self.w_max:
            # Back at (or past) the rate of the last cut: the limit is about here.
            measured = min(self.rate, self._accepted(when, max(span, when - previous_end)))
        elif when - previous_end >= span:
            # Below it, sending for a pause's length or more since the last pause: cut only when the server
            # clearly accepted less than we were sending (its limit fell, or the last cut's measure was high).
            self._shorts = 0
            measured = self._accepted(when, when - previous_end)
            if measured >= BETA * self.rate:
                return
            measured = min(self.rate, self._accepted(when, max(span, when - previous_end)))
        else:
            # Too soon after the last pause to measure anything: a pause, no cut, unless it keeps happening (a
            # limit that fell below the rate refuses within a pause's length of every pause).
            self._shorts += 1
            if self._shorts < _SHORTS:
                return
            measured = min(self.rate, self._accepted(when, max(span, when - previous_end)))
        self._cut(measured, pause)

    def _accepted(self, now: float, horizon: float) -> float:
        """Requests a second the server accepted, of those sent in the `horizon` seconds before `now`."""
        if horizon <= 0:
            return 0.0
        since = now - horizon
        count = 0
        for when in reversed(self._oks):
            if when <= since:
                break
            count += 1
        if count == len(self._oks) == _HISTORY:
            horizon = max(now - self._oks[0], 1e-3)  # the memory ran out first
        return count / horizon

    def _cut(self, measured: float, pause: float) -> None:
        self._shorts = self._doubts = 0
        if measured <= 0 and self.slow_start:  # nothing got through: start over, as at first contact
            self.rate, self.w_max, self._blind, self._next_at = None, 0.0, False, -math.inf
            self.window, self._fluke, self._widened, self._mark = 1.0, False, 0, None
            return
        self._blind = measured <= 0
        if self._blind:  # nothing got through: start at one send per pause (at most one a second) and grow
            self.w_max = self._cap(1.0 / max(pause, 1.0))
            self._r0 = self.w_max
        else:
            self.w_max = self._cap(measured)
            self._r0 = BETA * self.w_max
        self._n = 0
        # What one 429 costs, in answers: its pause at this rate. Grow back within about that many answers,
        # and probe past w_max slowly enough that a 429 comes at most every dozen pauses' worth of answers.
        cost = self.w_max * pause
        self._recover = max(10.0, cost)
        self._probe = max(150.0, 15 * cost)
        self._set_rate(self._r0)

    def _cap(self, rate: float) -> float:
        return rate if self.ceiling is None else min(rate, self.ceiling)

    def _set_rate(self, rate: float) -> None:
        self.rate = self._cap(rate)
        self._next_at = self._last_sent + 1.0 / self.rate  # the line's head moves with the rate


class Seen(Protocol):
    """Called with an attempt's outcome, which it returns unchanged."""

    def __call__(self, outcome: _T, /) -> _T: ...


def ceiling(limits: RateLimits, scope: Scope) -> float | None:
    """The fastest a learned rate may grow: the rate of the scope's shortest window (None: no budget).

    Longer windows ("500/day") still hold through the budgets; as a ceiling they would space every send a
    day's worth apart even while the day's budget is mostly unspent.
    """
    rates = limits.rates(scope)
    if not rates:
        return None
    shortest = min(rate.per for rate in rates)
    return min(rate.count / rate.per for rate in rates if rate.per == shortest)


class Pacing:
    """Budgets (`_budgets`, `_redis`) and the adaptive rate per key, behind the two calls the transport makes."""

    _SWEEP_EVERY = 1024  # new keys between sweeps of idle, never-throttled ones

    def __init__(self, limits: RateLimits, *, clock: Clock, sleep: Sleep) -> None:
        self.limits = limits
        self.budgets: Budgets = make_budgets(limits, clock=clock, sleep=sleep)
        self._clock = clock
        self._sleep = sleep
        self._paces: dict[tuple[Scope, str], KeyPace] = {}
        self._added = 0
        self._ceilings = {scope: ceiling(limits, scope) for scope in ("partner", "practice")}

    def pace(self, key: Secret, scope: Scope) -> KeyPace:
        ident = (scope, budget_id(key))
        pace = self._paces.get(ident)
        if pace is None:
            self._added += 1
            if self._added % self._SWEEP_EVERY == 0:
                now = self._clock()
                for old in [k for k, p in self._paces.items() if p.forgettable(now)]:
                    del self._paces[old]
            link = getattr(self.budgets, "rate_link", None)  # Redis: the rate is the key's, shared by processes
            if link is not None:
                from ._sharedrate import SharedKeyPace

                pace = SharedKeyPace(link(key, scope), self._ceilings[scope], self._clock, self._sleep)
            else:
                pace = KeyPace(self._ceilings[scope], self._clock, self._sleep)
            if link is not None or self.limits.concurrency is not None:
                # No slow start with a configured cap on sends in flight (it is the window), nor with the rate
                # shared through Redis (the key's schedule there paces every process's sends).
                pace.slow_start, pace.window = False, None
            self._paces[ident] = pace
        return pace

    @contextlib.asynccontextmanager
    async def slot(self, key: Secret, scope: Scope, deadline: float | None) -> AsyncIterator[Seen]:
        """Wait for the key's budget, then its turn at the learned rate; yields `seen`, to be called with the
        attempt's outcome (returned unchanged) so that the rate learns from it."""
        async with self.budgets.slot(key, scope, deadline) as ticket:
            if not self.limits.adaptive:
                yield _unseen
                return
            pace = self.pace(key, scope)
            sent_at = await pace.turn(deadline)

            def seen(outcome: _T) -> _T:
                if isinstance(outcome, httpx.Response):
                    status = outcome.status_code
                    if status == 429:
                        retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
                        pace.throttled(self._clock(), sent_at, self.limits.pause_length(retry_after))
                    elif status < 500:
                        pace.succeeded(sent_at)
                        if ticket is not None:
                            ticket.accepted = True
                return outcome

            try:
                yield seen
            finally:
                pace.done()  # its place in the slow-start window is free

    async def pause(self, key: Secret, scope: Scope, retry_after: float | None) -> float:
        """A 429: pause the key in the budgets (and so, with Redis, in every process). Returns the wait."""
        return await self.budgets.pause(key, scope, retry_after)

    async def aclose(self) -> None:
        await self.budgets.aclose()


def _unseen(outcome: _T) -> _T:
    return outcome
