"""The one place that decides what is sent: keys and paths checked, limits, rate, retries, call timeouts and
deadlines, shutdown, typed errors, the events of each call. One attempt's HTTP goes through `_channel`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import inspect
import math
import os
import random as _random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypedDict, TypeVar, Unpack, overload

import httpx

from . import _constants as C
from . import events
from ._base import AsyncCloseable, is_loopback_host
from ._budgets import RateLimits, Scope, WaitTooLong, scope_of, shared_window
from ._channel import AttemptLimits, Channel, Outcome, default_timeout, failure_error
from ._errors import (
    APITimeoutError,
    ClientClosedError,
    InvalidRequestError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
    is_ambiguous,
    parse_retry_after,
)
from ._network import Cert, Network, Verify, check_network
from ._pacing import Pacing
from ._retry import NOTHING_SENT, is_idempotent, retry_delay, should_retry
from ._secret import Secret
from ._stack import HttpStack
from ._wire import strict_setting
from .events import Hook, check_hooks

__all__ = ["SendOptions", "Transport", "TransportOptions", "default_timeout", "is_ambiguous"]

# When the call being sent must end (loop time), set by `bounded` when a call_timeout applies (or by
# `waits_bounded_by`), and by which task: a task started inside a call (the shared practice-key fetch) copies the
# context, but the deadline, like the asyncio.timeout() that enforces it, is the calling task's alone.
_CALL_ENDS: contextvars.ContextVar[tuple[asyncio.Task[Any], float | Callable[[], float | None]] | None] = (
    contextvars.ContextVar("intakeq_call_ends", default=None)
)


def call_ends() -> float | None:
    """When the current task's call must end (loop time), or None: no deadline in force in this task."""
    ends = _CALL_ENDS.get()
    if ends is None or ends[0] is not asyncio.current_task():
        return None
    return ends[1]() if callable(ends[1]) else ends[1]


@contextlib.contextmanager
def waits_bounded_by(ends: Callable[[], float | None]) -> Iterator[None]:
    """Within this block, this task's calls that set no call_timeout of their own wait for a key's budget only
    until `ends()` (loop time, asked anew at each wait; None: `max_wait` alone): the shared key fetch, whose
    waiters' deadlines change as they come and go."""
    task = asyncio.current_task()
    assert task is not None
    token = _CALL_ENDS.set((task, ends))
    try:
        yield
    finally:
        _CALL_ENDS.reset(token)


T = TypeVar("T")


def _check_base_url(base_url: str | None) -> str:
    """Keys travel in a header, so anything but loopback must be https. None: $INTAKEQ_BASE_URL, else IntakeQ."""
    name = "base_url"
    if base_url is None:
        name, base_url = (
            f"${C.BASE_URL_ENV} (read as no base_url was given)",
            os.environ.get(C.BASE_URL_ENV) or C.DEFAULT_BASE_URL,
        )
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidRequestError(f"{name} is not a URL: {exc}") from None
    if not url.host or url.query or url.fragment or url.userinfo:
        raise InvalidRequestError(f"{name} must be scheme://host[:port][/prefix], without credentials or query")
    if url.scheme != "https" and not (url.scheme == "http" and is_loopback_host(url.host)):
        raise InvalidRequestError(f"{name} must use https (plain http is allowed only for loopback hosts)")
    return str(url).rstrip("/")


def _positive(name: str, value: float | None, *, allow_none: bool = False, allow_zero: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or isinstance(value, bool) or not (value > 0 or (allow_zero and value == 0)):
        raise InvalidRequestError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    if math.isinf(value):  # e.g. rate_limit=inf: would fail later with a bare OverflowError; None means no limit
        raise InvalidRequestError(f"{name} must be finite, got {value!r}")


class _Life:
    """Whether the pool is closed, and who is using it: one per pool, shared by the views with_options() makes."""

    def __init__(self) -> None:
        self.closed = False
        # Callers inside request() or bounded(), by task (a count: a facade call nests a request), so that
        # aclose() can end them; and those it has cancelled, to tell its cancellation from anyone else's.
        self.active: dict[asyncio.Task[Any], int] = {}
        self.cancelled_by_close: set[asyncio.Task[Any]] = set()
        self.drained = asyncio.Event()


class TransportOptions(TypedDict, total=False):
    """The sending options a client accepts and shares with every practice client it hands out."""

    http_client: httpx.AsyncClient | None
    transport: httpx.AsyncBaseTransport | None
    timeout: httpx.Timeout | float | None
    max_retries: int
    initial_delay: float
    max_delay: float
    max_concurrency: int | None
    rate_limit: float | None
    http_stack: HttpStack
    limits: RateLimits | None
    attempt_timeout: float | None
    call_timeout: float | None
    max_response_size: int
    hooks: Sequence[Hook]
    proxy: str | httpx.URL | None
    verify: Verify
    cert: Cert | None
    headers: Mapping[str, str] | None
    strict_responses: bool | None


class SendOptions(TypedDict, total=False):
    """The options `with_options` can change per call: how one request is sent, not what it is sent through.

    The pool, the concurrency and rate limits and the HTTP stack are what clients share, so they stay.
    """

    timeout: httpx.Timeout | float | None
    max_retries: int
    initial_delay: float
    max_delay: float
    attempt_timeout: float | None
    call_timeout: float | None
    max_response_size: int
    hooks: Sequence[Hook]


class Transport(AsyncCloseable):
    """Sends requests to IntakeQ; shared by the partner key and every practice key, so keys go per request."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float | None = None,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        initial_delay: float = C.DEFAULT_INITIAL_DELAY,
        max_delay: float = C.DEFAULT_MAX_DELAY,
        max_concurrency: int | None = C.DEFAULT_MAX_CONCURRENCY,
        rate_limit: float | None = None,
        http_stack: HttpStack = "auto",
        limits: RateLimits | None = None,
        attempt_timeout: float | None = C.DEFAULT_ATTEMPT_TIMEOUT,
        call_timeout: float | None = C.DEFAULT_CALL_TIMEOUT,
        max_response_size: int = C.DEFAULT_MAX_RESPONSE_SIZE,
        hooks: Sequence[Hook] | None = None,
        proxy: str | httpx.URL | None = None,
        verify: Verify = True,
        cert: Cert | None = None,
        headers: Mapping[str, str] | None = None,
        strict_responses: bool | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if http_client is not None and transport is not None:
            raise InvalidRequestError("pass either http_client or transport, not both")
        _positive("max_concurrency", max_concurrency, allow_none=True)
        _positive("rate_limit", rate_limit, allow_none=True)
        if limits is not None and not isinstance(limits, RateLimits):
            raise InvalidRequestError("limits must be a RateLimits")
        self.base_url = _check_base_url(base_url)
        self._users_client = http_client is not None
        self._set_send_options(
            timeout, max_retries, initial_delay, max_delay, attempt_timeout, call_timeout, max_response_size
        )
        self._hooks = check_hooks(hooks)
        self._life = _Life()
        self._is_view = False
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        # Every key's budget, its pause after a 429 and the rate it learns; then the one rate shared by all keys.
        self.limits = limits if limits is not None else RateLimits()
        self._pacing = Pacing(self.limits, clock=clock, sleep=events.noting_waits(sleep, "budget"))
        shared_sleep = events.noting_waits(sleep, "rate_limit")
        self._shared_rate = shared_window(rate_limit, clock, shared_sleep) if rate_limit else None
        self._owns_budgets = True  # a with_options view shares them and leaves closing them to us
        network = check_network(proxy, verify, cert, headers)
        if (http_client is not None or transport is not None) and (http_stack != "auto" or network != Network()):
            raise InvalidRequestError(
                "http_stack, proxy, verify, cert and headers set up the client we build: set them on your own"
            )
        self._channel = Channel(
            self.base_url, http_client, transport, http_stack, max_concurrency, network, self._timeout
        )
        self.http_stack = self._channel.http_stack
        """Which HTTP stack sends: "aiohttp", "httpx", or "custom" (the caller's own client or transport)."""
        self._sent = [0]  # shared with the views with_options() makes
        self.strict_responses = strict_setting(strict_responses)
        """Whether a response field that does not fit its type fails the call (see _wire.decode_response)."""

    @property
    def requests_sent(self) -> int:
        """Attempts sent so far through this pool, retries included (each one the server may count)."""
        return self._sent[0]

    def _set_send_options(
        self,
        timeout: httpx.Timeout | float | None,
        max_retries: int,
        initial_delay: float,
        max_delay: float,
        attempt_timeout: float | None,
        call_timeout: float | None,
        max_response_size: int,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidRequestError(f"max_retries must be an int >= 0, got {max_retries!r}")
        _positive("initial_delay", initial_delay, allow_zero=True)
        _positive("max_delay", max_delay, allow_zero=True)
        _positive("attempt_timeout", attempt_timeout, allow_none=True)
        _positive("call_timeout", call_timeout, allow_none=True)
        if isinstance(max_response_size, bool) or not isinstance(max_response_size, int) or max_response_size < 1:
            raise InvalidRequestError(f"max_response_size must be an int >= 1, got {max_response_size!r}")
        self.attempt_timeout = attempt_timeout
        self.call_timeout = call_timeout
        self.max_response_size = max_response_size
        if timeout is not None and not isinstance(timeout, httpx.Timeout):
            _positive("timeout", timeout)
        # None means our defaults; a user's own client keeps its own timeout unless one is given here.
        if timeout is None:
            self._timeout: httpx.Timeout | None = None if self._users_client else default_timeout()
        else:
            self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._limits = AttemptLimits(self._timeout, attempt_timeout, max_response_size)
        self.max_retries = max_retries
        self._initial_delay = initial_delay
        self._max_delay = max_delay

    def with_options(self, **options: Unpack[SendOptions]) -> Transport:
        """This transport with other send options, sharing the pool, the concurrency limit and the rate budgets.

        The copy never closes the pool: it belongs to the transport it was made from.
        """
        unknown = set(options) - set(SendOptions.__annotations__)
        if unknown:
            raise InvalidRequestError(
                f"with_options changes only {', '.join(SendOptions.__annotations__)}; "
                f"{', '.join(sorted(unknown))} belong to the shared pool and limits: make a new client for those"
            )
        view = copy.copy(self)
        view._is_view = True
        view._owns_budgets = False
        view._set_send_options(
            options.get("timeout", self._timeout),
            options.get("max_retries", self.max_retries),
            options.get("initial_delay", self._initial_delay),
            options.get("max_delay", self._max_delay),
            options.get("attempt_timeout", self.attempt_timeout),
            options.get("call_timeout", self.call_timeout),
            options.get("max_response_size", self.max_response_size),
        )
        view._hooks = check_hooks(options["hooks"]) if "hooks" in options else self._hooks
        return view

    @property
    def options(self) -> SendOptions:
        """The send options in force (a timeout of None: the user's own http_client decides)."""
        return {
            "timeout": self._timeout,
            "max_retries": self.max_retries,
            "initial_delay": self._initial_delay,
            "max_delay": self._max_delay,
            "attempt_timeout": self.attempt_timeout,
            "call_timeout": self.call_timeout,
            "max_response_size": self.max_response_size,
            "hooks": self._hooks.hooks,
        }

    @overload
    async def request(
        self,
        method: str,
        path: str,
        *,
        key: Secret,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        parse: None = None,
    ) -> httpx.Response: ...

    @overload
    async def request(
        self,
        method: str,
        path: str,
        *,
        key: Secret,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        parse: Callable[[httpx.Response], T | Awaitable[T]],
    ) -> T: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        key: Secret,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        parse: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """Send with retries; return the 2xx response (or `parse` of it) or raise a typed IntakeQError.

        `parse` runs inside the retry loop: an unreadable success body (ResponseValidationError) is retried
        like a 502 when the request is idempotent, and is ambiguous otherwise.
        """
        if not isinstance(key, Secret):
            raise InvalidRequestError("key must be a Secret")
        if not path.startswith("/") or "?" in path or "#" in path:
            # Query values go in `params`, so the path alone can be logged and put in errors.
            raise InvalidRequestError("path must start with '/' and hold no query or fragment (use params=)")
        method = method.upper()
        task = asyncio.current_task()
        assert task is not None
        attempts = self._attempts(method, path, key, params, json, idempotent, parse, task)
        if task in self._life.active:  # part of a call (a facade method's) that bounds it all
            return await attempts
        return await self.bounded(attempts, method, path)

    async def _attempts(
        self,
        method: str,
        path: str,
        key: Secret,
        params: Mapping[str, str] | None,
        json: Any,
        idempotent: bool | None,
        parse: Callable[[httpx.Response], Any] | None,
        task: asyncio.Task[Any],
    ) -> Any:
        safe = is_idempotent(method, idempotent)
        observed = events.CALLS.get(task)  # the record of the observed call this request is part of, if any
        scope = scope_of(path)
        # How long waits on the key's budget may last, retries included: max_wait, or less if the call must end sooner.
        waits_end = self._clock() + self.limits.max_wait

        def deadline() -> float:
            ends = call_ends()
            if ends is None:
                return waits_end
            return min(waits_end, self._clock() + ends - asyncio.get_running_loop().time())

        attempt = 0
        maybe_sent = False  # whether an earlier attempt may have reached the server
        try:
            while True:
                started = self._clock()
                outcome = await self._send_once(method, path, key, params, json, scope, deadline(), attempt, observed)
                maybe_sent = maybe_sent or not isinstance(outcome, NOTHING_SENT)
                unreadable: ResponseValidationError | ResponseTooLargeError | None = None
                if isinstance(outcome, httpx.Response) and outcome.is_success:
                    try:
                        result = outcome if parse is None else parse(outcome)
                        if inspect.isawaitable(result):  # a big answer decoded in steps (_steps.py)
                            result = await result
                    except ResponseValidationError as exc:
                        unreadable = exc
                    else:
                        if observed is not None and (
                            later := events.answered(
                                observed, method, path, attempt, outcome, self._clock() - started, None, key
                            )
                        ):
                            await later
                        return result
                paused: float | None = None
                if isinstance(outcome, ResponseTooLargeError):
                    unreadable, delay = outcome, None  # the same answer would come again
                elif unreadable is not None:
                    delay = self._backoff(attempt) if safe and attempt < self.max_retries else None
                elif isinstance(outcome, httpx.Response) and outcome.status_code == 429:
                    # Pause the key for everyone who spends it; the retry then waits in the budget like the others.
                    retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
                    paused = await self._pacing.pause(key, scope, retry_after)
                    too_long = attempt >= self.max_retries or self._clock() + paused > deadline()
                    delay = None if too_long else 0.0
                else:
                    delay = self._delay_before_retry(outcome, attempt, safe)
                if observed is not None:
                    retry_in = None if delay is None else delay if paused is None else paused
                    elapsed = self._clock() - started
                    if later := events.answered(
                        observed, method, path, attempt, unreadable or outcome, elapsed, retry_in, key
                    ):
                        await later
                if delay is None:
                    if unreadable is not None:
                        raise unreadable
                    assert not isinstance(outcome, ResponseTooLargeError)
                    error = failure_error(outcome, method, path)
                    if isinstance(error, RateLimitError) and error.retry_after is None:
                        error.retry_after = paused  # the wait the key's budget now imposes
                    raise error
                if delay:
                    await self._sleep(delay)  # outside the semaphore: a waiting retry holds no slot
                attempt += 1
        except asyncio.CancelledError:
            # Closed while waiting for a slot or to retry (while sending, _send said so itself).
            closed = self._closed_error(method, path, maybe_sent=maybe_sent)
            if closed is None:
                raise
            raise closed from None

    async def bounded(self, call: Awaitable[T], method: str, path: str) -> T:
        """Await one call (a request and its retries, or a facade call made of several) under the transport's
        rules for calls: refused once closed, ended by aclose() with ClientClosedError, and bounded as a whole
        by `call_timeout` (APITimeoutError). Observed (events) when anyone listens."""
        if self._life.closed:
            if isinstance(call, Coroutine):
                call.close()  # never started: close it, or Python warns that it was never awaited
            raise ClientClosedError(method=method, path=path)
        task = asyncio.current_task()
        assert task is not None
        active = self._life.active
        active[task] = active.get(task, 0) + 1
        deadline = asyncio.timeout(self.call_timeout) if self.call_timeout is not None else None
        token = None
        if self.call_timeout is not None:  # so that a wait for the key's budget past it fails at once (RateLimitError)
            mine = asyncio.get_running_loop().time() + self.call_timeout
            ends = call_ends()
            token = _CALL_ENDS.set((task, mine if ends is None else min(ends, mine)))
        observed: events.Record | None = None
        succeeded = False
        try:
            try:  # a CallStarted hook may stop it all (KeyboardInterrupt), or be cancelled: the call never starts
                observed = events.begin(self._hooks, method, path, self._clock, self.base_url, task)
                if observed is not None and observed[events.PENDING] is not None:
                    await events.pending(observed)  # an async CallStarted hook's work
            except BaseException:
                if isinstance(call, Coroutine):
                    call.close()
                raise
            if deadline is None:
                result = await call
            else:
                async with deadline:
                    result = await call
            succeeded = True
            return result
        except asyncio.CancelledError:
            closed = self._closed_error(method, path, maybe_sent=False)
            if closed is None:
                raise
            raise closed from None
        except TimeoutError:
            if deadline is None or not deadline.expired():
                raise
            raise APITimeoutError(
                method=method, path=path, message=f"no answer within call_timeout ({self.call_timeout:g} s)"
            ) from None
        finally:
            # What is being raised, if anything (not an exception the caller is handling).
            if observed is not None and (
                later := events.finish(observed, task, None if succeeded else sys.exception(), self._clock())
            ):
                await later
            if token is not None:
                _CALL_ENDS.reset(token)
            left = active[task] - 1
            if left:
                active[task] = left
            else:
                del active[task]
                if self._life.closed and not active:
                    self._life.drained.set()

    def _closed_error(self, method: str, path: str, *, maybe_sent: bool) -> ClientClosedError | None:
        """The error for a cancellation that aclose() made (and nobody else asked for too), or None."""
        task = asyncio.current_task()
        if task not in self._life.cancelled_by_close:
            return None
        self._life.cancelled_by_close.discard(task)
        assert task is not None
        if task.uncancel() > 0:  # someone else cancelled it as well: that one must go through
            return None
        return ClientClosedError(method=method, path=path, maybe_sent=maybe_sent)

    def _backoff(self, attempt: int) -> float:
        delay = retry_delay(attempt, initial_delay=self._initial_delay, max_delay=self._max_delay, random=self._random)
        return delay or 0.0

    def _delay_before_retry(
        self, outcome: httpx.Response | httpx.TransportError, attempt: int, idempotent: bool
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise."""
        if attempt >= self.max_retries or not should_retry(outcome, idempotent=idempotent):
            return None
        retry_after = None
        if isinstance(outcome, httpx.Response):
            retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
        return retry_delay(
            attempt, retry_after, initial_delay=self._initial_delay, max_delay=self._max_delay, random=self._random
        )

    async def _send_once(
        self,
        method: str,
        path: str,
        key: Secret,
        params: Mapping[str, str] | None,
        json: Any,
        scope: Scope,
        deadline: float,
        attempt: int,
        observed: events.Record | None,
    ) -> Outcome:
        """One attempt; a failure is returned, not raised, so the retry loop can judge it."""
        try:
            # The key's budget first: a call waiting for its own key holds none of the shared slots.
            async with self._pacing.slot(key, scope, deadline) as seen, self._slot():
                self._sent[0] += 1
                if observed is not None and (later := events.sent(observed, method, path, attempt)):
                    await later
                return seen(await self._send(method, path, key, params, json))
        except WaitTooLong as exc:
            raise RateLimitError(
                status_code=429, method=method, path=path, message=f"not sent: {exc}", retry_after=exc.wait
            ) from None

    async def _send(self, method: str, path: str, key: Secret, params: Mapping[str, str] | None, json: Any) -> Outcome:
        """The request itself (the slots held); a failure is returned, not raised."""
        try:
            return await self._channel.attempt(method, path, key, params, json, self._limits)
        except asyncio.CancelledError:
            closed = self._closed_error(method, path, maybe_sent=True)  # closed while sending
            if closed is None:
                raise
            raise closed from None

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """The slots every key shares: the concurrency cap, then the client-wide rate."""
        async with self._semaphore or contextlib.nullcontext():
            async with self._shared_rate.slot() if self._shared_rate is not None else contextlib.nullcontext():
                yield

    async def pause(self, attempt: int) -> None:
        """Back off before a caller's own retry (e.g. a create retried after looking it up)."""
        await self._sleep(self._backoff(attempt))

    async def aclose(self) -> None:
        """Stop: calls made from now on, and calls in flight, end with ClientClosedError (each releasing its
        slot), then the budgets' store and the HTTP client if we made it; a client handed in belongs to its owner.

        A view from with_options() closes nothing: the pool and its calls belong to the transport it came from.
        """
        if self._is_view:
            return
        if not self._life.closed:
            self._life.closed = True
            me = asyncio.current_task()
            for task in self._life.active:
                if task is not me and task not in self._life.cancelled_by_close:
                    self._life.cancelled_by_close.add(task)
                    task.cancel()
            if not self._life.active:
                self._life.drained.set()
        if any(task is not asyncio.current_task() for task in self._life.active):
            await self._life.drained.wait()  # they leave at their next await, having released what they hold
        if self._owns_budgets:
            await self._pacing.aclose()
        await self._channel.aclose()
