"""What a call does, as typed events: the one place the transport reports to, whoever listens.

The transport reports at fixed points: a call starts; an attempt is sent; its answer comes back (or its error);
a retry is scheduled; a wait for a budget begins; the call finishes; a practice key is fetched. Listeners
are your hooks (`hooks=[...]` on a client or a `with_options` view), the log lines (`_logs`), OpenTelemetry
(`_otel`, when opentelemetry-api is installed) and `record_calls()`. When nobody listens, a call builds no
event: each point costs one context-variable lookup.

Events hold metadata only: method, path (query values are never part of it), status, attempt, times,
a few harmless response headers. Never a key, a token, a query value or a body.

For code that makes a call wait (a pacing module, say): `await waiting(seconds, reason)` before sleeping, or
sleep through `noting_waits(sleep, reason)`; both cost nothing when the current call is not observed.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import httpx

from ._constants import LOGGER_NAME, REQUEST_ID_HEADERS
from ._redact import redact
from ._secret import Secret

__all__ = [
    "CallFinished",
    "CallInfo",
    "CallStarted",
    "Event",
    "Exchange",
    "Hook",
    "KeyFetched",
    "RequestSent",
    "ResponseReceived",
    "RetryScheduled",
    "Waiting",
    "noting_waits",
    "record_calls",
    "waiting",
]

T = TypeVar("T")
logger = logging.getLogger(LOGGER_NAME)

# Response headers an Exchange keeps (values shortened; a request id echoing the key is masked by the caller).
KEPT_HEADERS = (
    *REQUEST_ID_HEADERS,
    "Retry-After",
    "Date",
    "Content-Type",
    "Content-Length",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)

_KEPT = {name.lower().encode(): name for name in KEPT_HEADERS}


@dataclass(slots=True)
class Exchange:
    """One HTTP attempt and what came of it. `headers` (the KEPT_HEADERS the answer had) and `request_id` are
    read from the answer's headers when first asked for."""

    method: str
    path: str  # without query values
    attempt: int  # 1 for the first try of a request, 2 for its first retry...
    status: int | None  # None: no answer (`error` says why)
    error: str | None  # what went wrong: an exception's class name, "unreadable body"...; None when all is well
    elapsed: float  # seconds, from sending to the answer read
    retry_in: float | None = None  # seconds until it is sent again; None: not retried
    _raw: httpx.Headers | dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _key: weakref.ref[Secret] | None = field(default=None, repr=False, compare=False)  # sent with; not kept alive

    @property
    def headers(self) -> dict[str, str]:
        if isinstance(self._raw, httpx.Headers):
            secret = self._key() if self._key is not None else None
            sent = secret.reveal() if secret is not None else None
            kept = {}
            for raw_name, raw_value in self._raw.raw:
                name = _KEPT.get(raw_name.lower())
                if name is not None:  # a server may echo anything, the key it was sent included: masked
                    kept[name] = redact(raw_value.decode("latin-1"), sent)[:200]
            self._raw, self._key = kept, None
        return self._raw

    @property
    def request_id(self) -> str | None:
        headers = self.headers
        return next((headers[name] for name in REQUEST_ID_HEADERS if name in headers), None)


@dataclass(slots=True, eq=False)
class CallInfo:
    """One facade call (a method of a client, all its requests and retries), as it goes and once it ended."""

    method: str
    path: str
    server: str = ""  # where it was sent: the client's base_url (scheme, host, port and any prefix)
    exchanges: list[Exchange] = field(default_factory=list)
    status: int | None = None  # the last answer's status (the error's, for an HTTP error)
    error: str | None = None  # the class name of the exception the call raised; None on success
    elapsed: float | None = None  # seconds, once finished
    waited: float = 0.0  # seconds spent waiting for a budget or a pause after a 429 (retry backoff excluded)
    retries: int = 0
    keys_fetched: int = 0

    @property
    def attempts(self) -> int:
        """HTTP attempts sent (retries and a practice-key fetch included)."""
        return len(self.exchanges)

    @property
    def request_id(self) -> str | None:
        """The last request id the server gave, if any."""
        return next((e.request_id for e in reversed(self.exchanges) if e.request_id), None)

    @property
    def finished(self) -> bool:
        return self.elapsed is not None


@dataclass(slots=True)
class CallStarted:
    call: CallInfo


@dataclass(slots=True)
class RequestSent:
    call: CallInfo
    method: str
    path: str
    attempt: int


@dataclass(slots=True)
class ResponseReceived:
    """An attempt ended: an answer, or no answer (`exchange.error`)."""

    call: CallInfo
    exchange: Exchange


@dataclass(slots=True)
class RetryScheduled:
    call: CallInfo
    method: str
    path: str
    attempt: int  # the attempt that failed
    reason: str  # its status ("503", "429") or error ("ReadTimeout", "unreadable body")
    delay: float  # seconds until the next attempt (after a 429: the key's pause)


@dataclass(slots=True)
class Waiting:
    """The call waits before it may send: `reason` "budget" (the key's rate budget or its pause after a 429),
    "rate_limit" (the client-wide rate), or another module's own name."""

    call: CallInfo
    reason: str
    seconds: float


@dataclass(slots=True)
class KeyFetched:
    """A practice's key was fetched with the partner key (`refreshed`: because IntakeQ refused the cached one)."""

    call: CallInfo
    practice: str  # the practice's Id or external ID, as the caller named it
    refreshed: bool
    elapsed: float


@dataclass(slots=True)
class CallFinished:
    call: CallInfo
    status: int | None
    error: str | None
    attempts: int
    elapsed: float


Event: TypeAlias = CallStarted | RequestSent | ResponseReceived | RetryScheduled | Waiting | KeyFetched | CallFinished
Hook: TypeAlias = Callable[[Event], Any]
"""A listener: called with every event; may be a plain function or return an awaitable (awaited in place)."""


def check_hooks(hooks: Sequence[Hook] | None) -> tuple[Hook, ...]:
    from ._errors import InvalidRequestError

    if hooks is None:
        return ()
    if isinstance(hooks, str | bytes) or not isinstance(hooks, Sequence) or not all(callable(h) for h in hooks):
        raise InvalidRequestError("hooks must be a list of callables, each taking one event")
    return tuple(hooks)


_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("intakeq_call", default=None)
_RECORDERS: contextvars.ContextVar[tuple[list[CallInfo], ...]] = contextvars.ContextVar("intakeq_rec", default=())
_REFRESHING: contextvars.ContextVar[bool] = contextvars.ContextVar("intakeq_refreshing", default=False)
current = _CURRENT.get
"""The observed call under way in this context, or None (what the transport asks at each point)."""

# Listeners that come with the library, each asked at every call whether it listens now (None: not now).
_ambient: list[Callable[[], Hook | None]] | None = None


def _ambient_listeners() -> list[Callable[[], Hook | None]]:
    global _ambient
    if _ambient is None:
        from ._logs import log_listener
        from ._otel import otel_listener

        _ambient = [log_listener, otel_listener]
    return _ambient


def begin(
    hooks: tuple[Hook, ...], method: str, path: str, clock: Callable[[], float], server: str = ""
) -> _Call | None:
    """A record for a call about to start, or None: nobody listens, or it is part of an observed call."""
    if _CURRENT.get() is not None:
        return None
    listeners: Sequence[Hook] = hooks
    for ambient in _ambient or _ambient_listeners():
        listener = ambient()
        if listener is not None:
            listeners = (*listeners, listener)
    recorders = _RECORDERS.get()
    if not listeners and not recorders:
        return None
    info = CallInfo(method, path, server)
    for recorder in recorders:
        recorder.append(info)
    return _Call(info, listeners, clock)


class _Call:
    """A call being observed: its record and its listeners."""

    __slots__ = ("_clock", "_listeners", "_started", "_token", "info")

    def __init__(self, info: CallInfo, listeners: Sequence[Hook], clock: Callable[[], float]) -> None:
        self.info = info
        self._listeners = listeners
        self._clock = clock
        self._started = clock()

    def emit(self, event: Event) -> list[tuple[Hook, Awaitable[Any]]] | None:
        """Call every listener; return what async ones returned, for `settle` to await (None: nothing to await,
        the common case, which then costs no coroutine)."""
        pending = None
        for listener in self._listeners:
            try:
                result = listener(event)
            except Exception:
                _blame(listener, event)
                continue
            if result is not None and inspect.isawaitable(result):
                pending = pending or []
                pending.append((listener, result))
        return pending

    @staticmethod
    async def settle(pending: list[tuple[Hook, Awaitable[Any]]], event: Event) -> None:
        for listener, result in pending:
            try:
                await result
            except Exception:
                _blame(listener, event)

    def tell(self, event: Event) -> Awaitable[None] | None:
        """Tell the listeners; what is returned (async hooks' work) must be awaited. Sync, so that a call with
        only plain hooks costs no coroutine per event: the transport awaits only what comes back."""
        pending = self.emit(event)
        return None if pending is None else self.settle(pending, event)

    async def atell(self, event: Event) -> None:
        if (later := self.tell(event)) is not None:
            await later

    def start(self) -> Awaitable[None] | None:
        """The call starts: this record is current (in this task and those it starts) until `finish`."""
        self._token = _CURRENT.set(self)
        return self.tell(CallStarted(self.info))

    def finish(self, raised: BaseException | None) -> Awaitable[None] | None:
        """The call ended, returning (`raised` None) or raising."""
        info = self.info
        if raised is not None:
            info.error = type(raised).__name__
            status = getattr(raised, "status_code", None)
            info.status = status if isinstance(status, int) else None
        info.elapsed = self._clock() - self._started
        try:
            return self.tell(CallFinished(info, info.status, info.error, info.attempts, info.elapsed))
        finally:
            _CURRENT.reset(self._token)

    def sent(self, method: str, path: str, attempt: int) -> Awaitable[None] | None:
        return self.tell(RequestSent(self.info, method, path, attempt + 1))

    def answered(
        self,
        method: str,
        path: str,
        attempt: int,
        outcome: object,
        elapsed: float,
        retry_in: float | None,
        key: Secret | None = None,
    ) -> Awaitable[None] | None:
        """An attempt's outcome: a Response, an httpx.TransportError, or one of our errors carrying a status;
        `key`, the key it was sent with, is masked wherever a header echoes it."""
        exchange = Exchange(method, path, attempt + 1, getattr(outcome, "status_code", None), None, elapsed, retry_in)
        if isinstance(outcome, httpx.Response):
            exchange._raw = outcome.headers  # read (and masked) into `headers` only if asked for
            if key is not None:
                exchange._key = weakref.ref(key)
        else:
            exchange.error = _ERRORS.get(type(outcome).__name__, type(outcome).__name__)
        self.info.exchanges.append(exchange)
        if exchange.status is not None:
            self.info.status = exchange.status
        later = self.tell(ResponseReceived(self.info, exchange))
        if retry_in is not None:
            self.info.retries += 1
            reason = str(exchange.status) if exchange.error is None else exchange.error
            retry = self.tell(RetryScheduled(self.info, method, path, attempt + 1, reason, retry_in))
            if retry is not None:
                later = retry if later is None else _both(later, retry)
        return later

    async def waiting(self, seconds: float, reason: str) -> None:
        self.info.waited += seconds
        await self.atell(Waiting(self.info, reason, seconds))


async def _both(first: Awaitable[None], second: Awaitable[None]) -> None:
    await first
    await second


def _blame(listener: Hook, event: Event) -> None:
    name = getattr(listener, "__qualname__", None) or type(listener).__qualname__
    logger.warning("hook %s raised on %s; the call goes on", name, type(event).__name__, exc_info=True)


_ERRORS = {"ResponseValidationError": "unreadable body", "ResponseTooLargeError": "body over max_response_size"}


async def waiting(seconds: float, reason: str) -> None:
    """Say that the current call is about to wait `seconds` before sending (nothing happens if unobserved)."""
    call = _CURRENT.get()
    if call is not None and seconds > 0:
        await call.waiting(seconds, reason)


def noting_waits(sleep: Callable[[float], Awaitable[None]], reason: str) -> Callable[[float], Awaitable[None]]:
    """`sleep`, reporting each wait as a Waiting event of the current call."""

    async def noted(seconds: float) -> None:
        call = _CURRENT.get()
        if call is not None and seconds > 0:
            await call.waiting(seconds, reason)
        await sleep(seconds)

    return noted


@contextlib.contextmanager
def refreshing_key() -> Iterator[None]:
    """Within this block, a key fetch is a refresh (the cached key was refused)."""
    token = _REFRESHING.set(True)
    try:
        yield
    finally:
        _REFRESHING.reset(token)


async def key_fetched(practice: str, elapsed: float) -> None:
    call = _CURRENT.get()
    if call is not None:
        call.info.keys_fetched += 1
        await call.atell(KeyFetched(call.info, practice, _REFRESHING.get(), elapsed))


@contextlib.contextmanager
def record_calls() -> Iterator[list[CallInfo]]:
    """Collect a CallInfo for every call made inside the block (tasks it starts included), in order of start:

    with record_calls() as calls:
        practice = await client.practices.get("ext-1")
    print(calls[-1].status, calls[-1].attempts, calls[-1].request_id, calls[-1].exchanges)
    """
    calls: list[CallInfo] = []
    token = _RECORDERS.set((*_RECORDERS.get(), calls))
    try:
        yield calls
    finally:
        _RECORDERS.reset(token)
