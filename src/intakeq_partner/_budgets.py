"""Request budgets: how many requests may start, and when, so that IntakeQ's rate limits are never hit.

The transport asks `slot(key, ...)` before every attempt and reports every 429 with `pause(...)`; everything
about pacing lives here. Each API key spends its own budget (the partner key one, every practice key its own),
identified by a hash of the key, never the key itself. `RateLimits` is the configuration users write;
`LocalBudgets` keeps the budgets in this process; `_redis.RedisBudgets` keeps them in Redis, shared by every
process of a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from ._constants import DEFAULT_PAUSE_AFTER_429, MAX_PAUSE_AFTER_429, MAX_RETRY_AFTER
from ._errors import InvalidRequestError
from ._secret import Secret

__all__ = ["Budgets", "LocalBudgets", "Rate", "RateLimits", "WaitTooLong", "budget_id", "make_budgets", "scope_of"]

Scope = Literal["partner", "practice"]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+(?:\.\d+)?)?\s*([a-z]+))?\s*$")


@dataclass(frozen=True)
class Rate:
    """At most `count` requests in any `per` seconds (a sliding window, as IntakeQ is said to count)."""

    count: int
    per: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise InvalidRequestError(f"a rate's count must be an int >= 1, got {self.count!r}")
        if isinstance(self.per, bool) or not isinstance(self.per, int | float) or not 0 < self.per < math.inf:
            raise InvalidRequestError(f"a rate's window must be a finite number of seconds > 0, got {self.per!r}")

    @classmethod
    def parse(cls, text: str) -> tuple[Rate, ...]:
        """`"10/minute, 500/day"`, `"50/s"`, `"5/10s"` or a bare `"50"` (per second)."""
        rates = []
        for part in text.split(","):
            match = _RATE.match(part.lower())
            if not match or (match[3] is not None and match[3] not in _UNITS):
                raise InvalidRequestError(f"cannot read {part.strip()!r} as a rate: write e.g. 10/minute or 50/s")
            count, times, unit = match.groups()
            rates.append(cls(int(count), float(times or 1) * _UNITS[unit or "s"]))
        return tuple(rates)

    def __str__(self) -> str:
        return f"{self.count}/{self.per:g}s"


def _rates(name: str, value: str | Rate | Iterable[Rate]) -> tuple[Rate, ...]:
    if isinstance(value, str):
        return Rate.parse(value) if value.strip() else ()
    if isinstance(value, Rate):
        return (value,)
    rates = tuple(value)
    if not all(isinstance(rate, Rate) for rate in rates):
        raise InvalidRequestError(f"{name} must be a string such as '10/minute', a Rate, or a list of Rates")
    return rates


@dataclass(frozen=True, init=False)
class RateLimits:
    """Budgets per API key: the partner key spends `partner`, and each practice key its own `practice`.

    Each is one or more windows (`"10/minute, 500/day"` or `Rate` objects); a request starts only when every
    window has room. `concurrency` caps the requests in flight per key. After a 429 the key's budget pauses for
    everyone who shares it, for the server's Retry-After or `pause_after_429` seconds when it gives none (at most
    an hour, or `pause_after_429` if longer, so that a wrong header cannot stop a key for good). A call
    that would wait longer than `max_wait` for its budget fails at once with `RateLimitError` (its
    `retry_after` says how long the wait would have been). With `redis_url` the budgets live in Redis and every
    process that points there shares them (`pip install 'intakeq-partner[redis]'`); if Redis cannot be reached,
    `on_redis_error="fallback"` (the default) keeps going with this process's own budgets at once while one
    background probe checks Redis (one warning when it goes, one when it is back), `"fail"` raises
    `RateLimiterUnavailableError`. README's "Rate budgets and many processes" says what each kind of trouble does.

    `adaptive` (on by default): a key that meets a 429 gets a sending rate, cut by each 429 the rate explains
    and grown back while answers succeed, never past the key's shortest window (see `_pacing.py`).
    """

    partner: tuple[Rate, ...] = ()
    practice: tuple[Rate, ...] = ()
    concurrency: int | None = None
    pause_after_429: float = DEFAULT_PAUSE_AFTER_429
    max_wait: float = MAX_RETRY_AFTER
    redis_url: str | None = None
    on_redis_error: Literal["fallback", "fail"] = "fallback"
    redis_prefix: str = "intakeq-partner"
    fallback_share: float = 1.0
    """While Redis is unreachable, the share of each budget this process spends alone (1/N for N processes)."""
    adaptive: bool = True

    def __init__(
        self,
        *,
        partner: str | Rate | Iterable[Rate] = (),
        practice: str | Rate | Iterable[Rate] = (),
        concurrency: int | None = None,
        pause_after_429: float = DEFAULT_PAUSE_AFTER_429,
        max_wait: float = MAX_RETRY_AFTER,
        redis_url: str | None = None,
        on_redis_error: Literal["fallback", "fail"] = "fallback",
        redis_prefix: str = "intakeq-partner",
        fallback_share: float = 1.0,
        adaptive: bool = True,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "partner", _rates("partner", partner))
        set_(self, "practice", _rates("practice", practice))
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise InvalidRequestError(f"concurrency must be None or an int >= 1, got {concurrency!r}")
        set_(self, "concurrency", concurrency)
        for name, value in (("pause_after_429", pause_after_429), ("max_wait", max_wait)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise InvalidRequestError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        set_(self, "pause_after_429", float(pause_after_429))
        set_(self, "max_wait", float(max_wait))
        if redis_url is not None:
            _check_redis_url(redis_url)
        set_(self, "redis_url", redis_url)
        if on_redis_error not in ("fallback", "fail"):
            raise InvalidRequestError(f"on_redis_error must be 'fallback' or 'fail', got {on_redis_error!r}")
        set_(self, "on_redis_error", on_redis_error)
        if not isinstance(redis_prefix, str) or not redis_prefix:
            raise InvalidRequestError("redis_prefix must be a non-empty string")
        set_(self, "redis_prefix", redis_prefix)
        if (
            isinstance(fallback_share, bool)
            or not isinstance(fallback_share, int | float)
            or not 0 < fallback_share <= 1
        ):
            raise InvalidRequestError(f"fallback_share must be in (0, 1], got {fallback_share!r}")
        set_(self, "fallback_share", float(fallback_share))
        if not isinstance(adaptive, bool):
            raise InvalidRequestError(f"adaptive must be True or False, got {adaptive!r}")
        set_(self, "adaptive", adaptive)

    def __repr__(self) -> str:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if self.redis_url is not None:
            fields["redis_url"] = safe_url(self.redis_url)  # a password in the URL stays out of reprs and logs
        return f"RateLimits({', '.join(f'{name}={value!r}' for name, value in fields.items())})"

    def pause_length(self, retry_after: float | None) -> float:
        """How long a 429 pauses the key: the server's wish (or `pause_after_429`), at most MAX_PAUSE_AFTER_429."""
        wish = self.pause_after_429 if retry_after is None else retry_after
        return min(wish, max(MAX_PAUSE_AFTER_429, self.pause_after_429))

    def rates(self, scope: Scope) -> tuple[Rate, ...]:
        return self.partner if scope == "partner" else self.practice

    def scaled(self, share: float) -> RateLimits:
        """The same limits with every count cut to `share` (at least 1): one process's part of a shared budget."""
        if share >= 1:
            return self

        def cut(rates: tuple[Rate, ...]) -> tuple[Rate, ...]:
            return tuple(Rate(max(1, math.floor(rate.count * share)), rate.per) for rate in rates)

        return RateLimits(
            partner=cut(self.partner),
            practice=cut(self.practice),
            concurrency=self.concurrency,
            pause_after_429=self.pause_after_429,
            max_wait=self.max_wait,
            adaptive=self.adaptive,
        )


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_redis_url(url: object) -> None:
    """Read the URL now, as redis-py will: a bad port or option fails here, not as a ValueError on every call."""
    if not isinstance(url, str) or not url.startswith(_REDIS_SCHEMES):
        raise InvalidRequestError("redis_url must start with redis://, rediss:// or unix://")
    shown = safe_url(url).partition("?")[0]  # no password, and no query (it may hold one too)
    try:
        urlsplit(url).port  # noqa: B018 - a port that is not a number, or out of range, raises here
    except ValueError:
        raise InvalidRequestError(f"redis_url {shown} cannot be read: its host or port is malformed") from None
    try:
        from redis.connection import parse_url
    except ImportError:
        return  # make_budgets says the extra is missing
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:  # its messages name the option, never the value
        raise InvalidRequestError(f"redis_url {shown} cannot be read: {exc}") from None


def safe_url(url: str) -> str:
    """A Redis address without its credentials, for messages, logs and reprs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def budget_id(key: Secret) -> str:
    """Who spends a budget: a hash of the key (it names the budget in memory and in Redis; the key never does).
    Made once per key: the budgets, the pacing and Redis's key names each ask for it at every request."""
    found = key._budget_id
    if found is None:
        found = hashlib.sha256(b"intakeq-partner budget\0" + key.reveal().encode()).hexdigest()[:32]
        object.__setattr__(key, "_budget_id", found)
    return found


def scope_of(path: str) -> Scope:
    """Partner endpoints are the partner key's; everything else (v1) is a practice key's."""
    return "partner" if path.startswith("/api/partner/") else "practice"


class WaitTooLong(Exception):
    """Waiting for the budget would take `wait` seconds, past the call's deadline; nothing was sent."""

    def __init__(self, wait: float, reason: str) -> None:
        self.wait = wait
        self.reason = reason
        super().__init__(f"{reason}: the wait would be {wait:.1f} s")


class Ticket:
    """What a shared budget's slot may yield: the pacing says whether the server accepted the request, and the
    slot's release tells Redis, so that every process learns the key's rate from the answers of all."""

    __slots__ = ("accepted",)

    def __init__(self) -> None:
        self.accepted = False


class Budgets(Protocol):
    """What the transport needs from a store of budgets, in this process or shared."""

    def slot(
        self, key: Secret, scope: Scope, deadline: float | None
    ) -> contextlib.AbstractAsyncContextManager[Ticket | None]:
        """Wait until a request with `key` may start (raise WaitTooLong past `deadline`); hold it while in flight."""
        ...

    async def pause(self, key: Secret, scope: Scope, retry_after: float | None) -> float:
        """A 429 came back: pause this key for everyone (at most `RateLimits.pause_length`).

        Returns the wait the server asked for (or `pause_after_429`): a call does not retry past its deadline.
        """
        ...

    async def aclose(self) -> None: ...


class _Window:
    """At most `count` starts in any `period` seconds, however late some of them reach the server.

    Start number k waits until start k - count has *finished*, plus `period`: that request reached the server
    before it finished, so the two can never fall in one window of a server counting arrivals. With
    `interval` the starts are also spaced evenly. Reserving a place is synchronous, so no lock is needed.
    """

    def __init__(self, count: int, period: float, clock: Clock, sleep: Sleep, interval: float = 0.0) -> None:
        self._count = count
        self._period = period
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        # When each of the last `count` requests finished (a future until it has), oldest first.
        self._ends: deque[asyncio.Future[float]] = deque()

    def earliest(self, now: float) -> float:
        """A lower bound on when the next start may happen (exact when the one it waits for has finished)."""
        start = max(now, self._next)
        if len(self._ends) >= self._count:
            earlier = self._ends[0]
            start = max(start, (earlier.result() if earlier.done() else now) + self._period)
        return start

    def idle(self, now: float) -> bool:
        """Nothing in flight and nothing recent: forgetting this window changes nothing."""
        return now >= self._next and all(e.done() and e.result() + self._period <= now for e in self._ends)

    def prefill(self, spent: int, at: float) -> None:
        """Count `spent` requests made elsewhere (through Redis) as finished at `at`, less those already here."""
        recent = sum(1 for e in self._ends if not e.done() or e.result() + self._period > at)
        loop = asyncio.get_running_loop()
        for _ in range(min(spent, self._count) - recent):
            if len(self._ends) >= self._count:
                self._ends.popleft()  # the oldest, finished a period ago: it no longer counts
            end: asyncio.Future[float] = loop.create_future()
            end.set_result(at)
            self._ends.append(end)

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float | None = None) -> AsyncIterator[None]:
        """Wait for this request's turn; hold the place while it is in flight."""
        now = self._clock()
        if deadline is not None and (start := self.earliest(now)) > deadline:
            raise WaitTooLong(start - now, "the key's budget is spent")
        start = max(now, self._next)
        self._next = start + self._interval
        end: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        earlier = self._ends.popleft() if len(self._ends) >= self._count else None
        self._ends.append(end)
        sent = False
        try:
            if start > now:
                await self._sleep(start - now)
            if earlier is not None:
                finished = await asyncio.shield(earlier)
                wait = finished + self._period - max(self._clock(), start)
                if deadline is not None and self._clock() + wait > deadline:
                    raise WaitTooLong(wait, "the key's budget is spent")
                if wait > 0:
                    await self._sleep(wait)
            sent = True
            yield
        finally:
            # Also on failure or cancellation: whoever waits on this place must not wait forever.
            if not end.done():
                if not sent and earlier is not None and not earlier.done():
                    # Gave up before sending: the one who waits on us inherits our wait for `earlier`,
                    # or it could start while `earlier` is still in flight.
                    earlier.add_done_callback(lambda f: _pass_on(f, end))
                elif not sent and earlier is not None:
                    end.set_result(earlier.result())
                elif not sent:
                    end.set_result(float("-inf"))  # nothing was sent: this place costs nothing
                else:
                    end.set_result(self._clock())


def _pass_on(earlier: asyncio.Future[float], end: asyncio.Future[float]) -> None:
    if not end.done():
        end.set_result(earlier.result())


def shared_window(rate: float, clock: Clock, sleep: Sleep) -> _Window:
    """The client-wide `rate_limit`: `rate` starts a second, evenly spaced, shared by every key."""
    return _Window(max(1, math.floor(rate)), 1.0, clock, sleep, interval=1.0 / rate)


class _KeyBudget:
    """One key's windows, its concurrency cap, and the pause a 429 set."""

    def __init__(self, rates: tuple[Rate, ...], concurrency: int | None, clock: Clock, sleep: Sleep) -> None:
        self.windows = [_Window(rate.count, rate.per, clock, sleep) for rate in rates]
        self.semaphore = asyncio.Semaphore(concurrency) if concurrency else None
        self.paused_until = float("-inf")
        self.in_flight = 0
        self._clock = clock
        self._sleep = sleep

    def idle(self, now: float) -> bool:
        return not self.in_flight and self.paused_until <= now and all(w.idle(now) for w in self.windows)

    async def wait_for_pause(self, deadline: float | None) -> None:
        waited_for = None  # sleep once per pause; again only if another 429 made it longer meanwhile
        while (now := self._clock()) < self.paused_until != waited_for:
            if deadline is not None and self.paused_until > deadline:
                raise WaitTooLong(self.paused_until - now, "the key is paused after a 429")
            waited_for = self.paused_until
            await self._sleep(self.paused_until - now)

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float | None) -> AsyncIterator[None]:
        now = self._clock()
        if deadline is not None:
            # Fail before reserving anything when any part of the wait is already known to be too long.
            start = max([now, *(w.earliest(now) for w in self.windows)])
            if start > deadline:
                raise WaitTooLong(start - now, "the key's budget is spent")
            if self.paused_until > deadline:
                raise WaitTooLong(self.paused_until - now, "the key is paused after a 429")
        self.in_flight += 1
        try:
            if not self.windows and self.semaphore is None:  # pacing after 429s only: the common case
                await self.wait_for_pause(deadline)
                yield
                return
            async with contextlib.AsyncExitStack() as stack:
                for window in self.windows:
                    await stack.enter_async_context(window.slot(deadline))
                if self.semaphore is not None:
                    await stack.enter_async_context(self.semaphore)
                await self.wait_for_pause(deadline)
                yield
        finally:
            self.in_flight -= 1


class LocalBudgets:
    """Budgets kept in this process: right for one process, or as the fallback while Redis is away."""

    _SWEEP_EVERY = 1024  # new keys between sweeps of idle ones, so many practices do not pile up state

    def __init__(self, limits: RateLimits, *, clock: Clock, sleep: Sleep) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._keys: dict[tuple[Scope, str], _KeyBudget] = {}
        self._added = 0
        # What Redis last said each key's windows held, all processes together, and when (see RedisBudgets): a
        # tuple per key, not a budget, so that a backend with 100,000 practices holds little while Redis is up.
        self._seen: dict[tuple[Scope, str], tuple[float, tuple[int, ...]]] = {}
        self._longest = max((rate.per for rate in (*limits.partner, *limits.practice)), default=0.0)
        self._assume: tuple[float, float] | None = None  # (share, when) while falling back

    def _budget(self, key: Secret, scope: Scope) -> _KeyBudget:
        return self._budget_of((scope, budget_id(key)))

    def _budget_of(self, ident: tuple[Scope, str]) -> _KeyBudget:
        scope = ident[0]
        budget = self._keys.get(ident)
        if budget is None:
            self._added += 1
            if self._added % self._SWEEP_EVERY == 0:
                now = self._clock()
                for old in [k for k, b in self._keys.items() if b.idle(now)]:
                    del self._keys[old]
            rates = self.limits.rates(scope)
            budget = self._keys[ident] = _KeyBudget(rates, self.limits.concurrency, self._clock, self._sleep)
        if self._assume is not None:
            self._assume_spent(ident, budget)
        return budget

    def slot(self, key: Secret, scope: Scope, deadline: float | None) -> contextlib.AbstractAsyncContextManager[None]:
        return self._budget(key, scope).slot(deadline)

    async def pause(self, key: Secret, scope: Scope, retry_after: float | None) -> float:
        budget = self._budget(key, scope)
        budget.paused_until = max(budget.paused_until, self._clock() + self.limits.pause_length(retry_after))
        return self.limits.pause_after_429 if retry_after is None else retry_after

    def seen(self, key: Secret, scope: Scope, counts: list[int]) -> None:
        """Redis says the key's windows hold `counts` requests now, all processes together (as a fallback, these
        budgets start from that, `assume_spent`)."""
        ident = (scope, budget_id(key))
        now = self._clock()
        if ident not in self._seen and len(self._seen) % self._SWEEP_EVERY == self._SWEEP_EVERY - 1:
            for old in [k for k, (at, _) in self._seen.items() if at + self._longest <= now]:
                del self._seen[old]  # out of every window: nothing to assume spent
        self._seen[ident] = (now, tuple(counts))

    def assume_spent(self, share: float) -> None:
        """Falling back: count `share` of what each key's windows held at the last word from Redis as spent
        here, so that N processes switching at once send nothing beyond the budget in the current windows.

        Applied to each key when the fallback first serves it, not to all of them now: a backend may have heard
        of 100,000 keys, and the event loop must not stop for them.
        """
        self._assume = (share, self._clock())

    def shared_again(self) -> None:
        """Redis is back: what it says from now on is for the next outage."""
        self._assume = None

    def _assume_spent(self, ident: tuple[Scope, str], budget: _KeyBudget) -> None:
        assert self._assume is not None
        share, switched = self._assume
        entry = self._seen.get(ident)
        if entry is None or entry[0] > switched:
            return
        del self._seen[ident]  # applied once
        at, counts = entry
        for window, count in zip(budget.windows, counts, strict=False):
            if at + window._period > switched:
                # As finished at the switch, not when Redis said so: some of them may still have been on their way.
                window.prefill(math.ceil(count * share), switched)

    def __len__(self) -> int:
        return len(self._keys)

    async def aclose(self) -> None:
        return None


def make_budgets(limits: RateLimits | None, *, clock: Clock, sleep: Sleep) -> Budgets:
    """In-process budgets, or shared ones when `limits.redis_url` is set (needs the `redis` extra)."""
    limits = limits if limits is not None else RateLimits()
    if limits.redis_url is None:
        return LocalBudgets(limits, clock=clock, sleep=sleep)
    from ._redis import RedisBudgets  # the optional extra, imported only when asked for

    return RedisBudgets(limits, clock=clock, sleep=sleep)
