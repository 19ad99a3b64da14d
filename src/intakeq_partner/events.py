"""What a call does, as typed events: the one place the transport reports to, whoever listens.

The transport reports at fixed points: a call starts; an attempt is sent; its answer comes back (or its error);
a retry is scheduled; a wait for a budget begins; the call finishes; a practice key is fetched. Listeners
are your hooks (`hooks=[...]` on a client or a `with_options` view), the log lines (`_logs`), OpenTelemetry
(`_otel`, when opentelemetry-api is installed) and `record_calls()`. When nobody listens, a call builds no
event: each point costs one context-variable lookup. Hooks are resolved once per client or view into who hears
each kind of event (`hook_for` narrows a hook to some kinds), and an event of a kind nobody hears is not built.

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
    "hook_for",
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
"""A listener: called with every event (or those `hook_for` names); may be a plain function or return an
awaitable (awaited in place)."""

KINDS: tuple[type[Event], ...] = (
    CallStarted,
    RequestSent,
    ResponseReceived,
    RetryScheduled,
    Waiting,
    KeyFetched,
    CallFinished,
)


class _ForKinds:
    """A hook that hears only some kinds of event (made by `hook_for`); calling it calls the hook."""

    __slots__ = ("hook", "kinds")

    def __init__(self, hook: Callable[[Any], Any], kinds: frozenset[type[Event]]) -> None:
        self.hook = hook
        self.kinds = kinds

    def __call__(self, event: Event) -> Any:
        return self.hook(event) if type(event) in self.kinds else None

    def __repr__(self) -> str:
        names = ", ".join(kind.__name__ for kind in KINDS if kind in self.kinds)
        return f"hook_for({names})({self.hook!r})"


def hook_for(*kinds: type[Event]) -> Callable[[Callable[[Any], Any]], Hook]:
    """Make a hook hear only these kinds of event. The others are not even built for it, so a hook that wants
    one kind costs a call one event, not four or more:

        @hook_for(RetryScheduled, CallFinished)
        def report(event: RetryScheduled | CallFinished) -> None: ...

        client = PartnerClient(key, hooks=[report])
    """
    from ._errors import InvalidRequestError

    if not kinds or not all(kind in KINDS for kind in kinds):
        names = ", ".join(kind.__name__ for kind in KINDS)
        raise InvalidRequestError(f"hook_for takes one or more event classes ({names}), got {kinds!r}")

    def only(hook: Callable[[Any], Any]) -> Hook:
        if not callable(hook):
            raise InvalidRequestError(f"hook_for(...) wraps a callable taking one event, not {hook!r}")
        if isinstance(hook, _ForKinds):
            return _ForKinds(hook.hook, hook.kinds & frozenset(kinds))
        return _ForKinds(hook, frozenset(kinds))

    return only


class Listeners:
    """A client's hooks, resolved once (when it is made, or a view with other hooks): who hears each kind of
    event. A call then builds an event only when someone hears its kind."""

    __slots__ = ("_plus", "answered", "any", "finished", "hooks", "key", "retry", "sent", "started", "waiting")

    def __init__(self, hooks: tuple[Hook, ...], listeners: Sequence[Hook] | None = None) -> None:
        self.hooks = hooks
        """As given (what `options["hooks"]` shows)."""
        heard = [
            (h.hook, h.kinds) if isinstance(h, _ForKinds) else (h, frozenset(KINDS))
            for h in (hooks if listeners is None else listeners)
        ]

        def hearing(kind: type[Event]) -> tuple[Hook, ...]:
            return tuple(hook for hook, kinds in heard if kind in kinds)

        self.started = hearing(CallStarted)
        self.sent = hearing(RequestSent)
        self.answered = hearing(ResponseReceived)
        self.retry = hearing(RetryScheduled)
        self.waiting = hearing(Waiting)
        self.key = hearing(KeyFetched)
        self.finished = hearing(CallFinished)
        self.any = any(kinds for _, kinds in heard)
        self._plus: dict[tuple[Hook, ...], Listeners] = {}

    def plus(self, ambient: tuple[Hook, ...]) -> Listeners:
        """These hooks and the library's own listeners that listen now (resolved once per combination)."""
        found = self._plus.get(ambient)
        if found is None:
            if len(self._plus) >= 8:
                self._plus.clear()
            found = self._plus[ambient] = Listeners(self.hooks, (*self.hooks, *ambient))
        return found


NO_HOOKS = Listeners(())


def check_hooks(hooks: Sequence[Hook] | None) -> Listeners:
    from ._errors import InvalidRequestError

    if hooks is None:
        return NO_HOOKS
    if isinstance(hooks, str | bytes) or not isinstance(hooks, Sequence) or not all(callable(h) for h in hooks):
        raise InvalidRequestError("hooks must be a list of callables, each taking one event")
    return Listeners(tuple(hooks)) if hooks else NO_HOOKS


# A call being observed: its record, who hears each kind of event, and when it started (clock time). A tuple,
# not an object of ours: a call with a hook builds as few objects as can be (CPU per call is the budget here).
_Call: TypeAlias = tuple[CallInfo, Listeners, float, Callable[[], float]]

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


def begin(hooks: Listeners, method: str, path: str, clock: Callable[[], float], server: str = "") -> _Call | None:
    """A record for a call about to start, or None: nobody listens, or it is part of an observed call."""
    if _CURRENT.get() is not None:
        return None
    ambient: tuple[Hook, ...] = ()
    for ask in _ambient or _ambient_listeners():
        listener = ask()
        if listener is not None:
            ambient = (*ambient, listener)
    listeners = hooks.plus(ambient) if ambient else hooks
    recorders = _RECORDERS.get()
    if not listeners.any and not recorders:
        return None
    info = CallInfo(method, path, server, [])
    for recorder in recorders:
        recorder.append(info)
    return info, listeners, clock(), clock


def _tell(listeners: tuple[Hook, ...], event: Event) -> Awaitable[None] | None:
    """Call each listener; what is returned (async hooks' work) must be awaited. Sync, so that a call with only
    plain hooks costs no coroutine per event: the transport awaits only what comes back."""
    if len(listeners) == 1:  # the common case, without the loop's bookkeeping
        listener = listeners[0]
        try:
            result = listener(event)
        except Exception:
            _blame(listener, event)
            return None
        return None if result is None or not inspect.isawaitable(result) else _settle([(listener, result)], event)
    pending = None
    for listener in listeners:
        try:
            result = listener(event)
        except Exception:
            _blame(listener, event)
            continue
        if result is not None and inspect.isawaitable(result):
            if pending is None:
                pending = []
            pending.append((listener, result))
    return None if pending is None else _settle(pending, event)


async def _settle(pending: list[tuple[Hook, Awaitable[Any]]], event: Event) -> None:
    for listener, result in pending:
        try:
            await result
        except Exception:
            _blame(listener, event)


def start(call: _Call) -> Awaitable[None] | None:
    """The call starts: it is current (in this task and those it starts) until `finish`."""
    _CURRENT.set(call)
    heard = call[1].started
    return _tell(heard, CallStarted(call[0])) if heard else None


def finish(call: _Call, raised: BaseException | None) -> Awaitable[None] | None:
    """The call ended, returning (`raised` None) or raising."""
    info, listeners, started, clock = call
    if raised is not None:
        info.error = type(raised).__name__
        status = getattr(raised, "status_code", None)
        info.status = status if isinstance(status, int) else None
    info.elapsed = clock() - started
    heard = listeners.finished
    try:  # told while still current: a call that a hook makes is part of this one, not observed again
        if heard:
            return _tell(heard, CallFinished(info, info.status, info.error, len(info.exchanges), info.elapsed))
        return None
    finally:
        _CURRENT.set(None)  # what it was before `start`: `begin` observes no call inside another


def sent(call: _Call, method: str, path: str, attempt: int) -> Awaitable[None] | None:
    heard = call[1].sent
    return _tell(heard, RequestSent(call[0], method, path, attempt + 1)) if heard else None


def answered(
    call: _Call,
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
    if isinstance(outcome, httpx.Response):  # its headers are read (and masked) only if asked for
        held = None if key is None else key.weak
        exchange = Exchange(
            method, path, attempt + 1, outcome.status_code, None, elapsed, retry_in, outcome.headers, held
        )
    else:
        error = _ERRORS.get(type(outcome).__name__, type(outcome).__name__)
        exchange = Exchange(method, path, attempt + 1, getattr(outcome, "status_code", None), error, elapsed, retry_in)
    info, listeners = call[0], call[1]
    info.exchanges.append(exchange)
    if exchange.status is not None:
        info.status = exchange.status
    heard = listeners.answered
    later = _tell(heard, ResponseReceived(info, exchange)) if heard else None
    if retry_in is not None:
        info.retries += 1
        if heard := listeners.retry:
            reason = str(exchange.status) if exchange.error is None else exchange.error
            retry = _tell(heard, RetryScheduled(info, method, path, attempt + 1, reason, retry_in))
            if retry is not None:
                later = retry if later is None else _both(later, retry)
    return later


async def _waiting(call: _Call, seconds: float, reason: str) -> None:
    info = call[0]
    info.waited += seconds
    heard = call[1].waiting
    if heard and (later := _tell(heard, Waiting(info, reason, seconds))) is not None:
        await later


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
        await _waiting(call, seconds, reason)


def noting_waits(sleep: Callable[[float], Awaitable[None]], reason: str) -> Callable[[float], Awaitable[None]]:
    """`sleep`, reporting each wait as a Waiting event of the current call."""

    async def noted(seconds: float) -> None:
        call = _CURRENT.get()
        if call is not None and seconds > 0:
            await _waiting(call, seconds, reason)
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
        info = call[0]
        info.keys_fetched += 1
        heard = call[1].key
        if heard and (later := _tell(heard, KeyFetched(info, practice, _REFRESHING.get(), elapsed))) is not None:
            await later


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
