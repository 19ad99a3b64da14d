"""What a call does, as typed events: the one place the transport reports to, whoever listens.

The transport reports at fixed points: a call starts; an attempt is sent; its answer comes back (or its error);
a retry is scheduled; a wait for a budget begins; the call finishes; a practice key is fetched. Listeners
are your hooks (`hooks=[...]` on a client or a `with_options` view), the log lines (`_logs`), OpenTelemetry
(`_otel`, when opentelemetry-api is installed) and `record_calls()`. When nobody listens, a call builds no
event: the transport looks the call up once a request (one dict lookup by task). Hooks are resolved once per
client or view into who hears each kind of event (`hook_for` narrows a hook to some kinds), and an event of a
kind nobody hears is not built. A call is observed in the task that makes it (and in the practice-key fetch it
starts); a task it starts otherwise makes calls of its own.

CPU per call is the budget here (a hook that hears everything must cost under 3% of a loopback call, about
4 us): an observed call's record is one list, found by task rather than through a context variable; events
are made with no Python frame (`_EventType`), the `CallInfo` and each `Exchange` only when someone asks for
them; each kind of event has one listener to call (a hook, or a `_Fanout` of several), called where each
frequent event is made.
`python -m bench observability` measures it.

Events hold metadata only: method, path (query values are never part of it), status, attempt, times,
a few harmless response headers. Never a key, a token, a query value or a body.

For code that makes a call wait (a pacing module, say): `await waiting(seconds, reason)` before sleeping, or
sleep through `noting_waits(sleep, reason)`; both cost nothing when the current call is not observed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeAlias, TypeVar, cast, overload

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
E = TypeVar("E", bound="_Event")
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


# An attempt as the transport reports it: Exchange's fields in order, made an Exchange only when someone looks
# (a tuple costs a fifth of what an object does, and most hooks never look at the exchanges).
_Attempt: TypeAlias = tuple[
    str,
    str,
    int,
    int | None,
    str | None,
    float,
    float | None,
    httpx.Headers | dict[str, str],
    weakref.ref[Secret] | None,
]

# The record of an observed call: one list, written by the transport as the call goes, read through a CallInfo.
# A list because making one costs a call a third of what an object with these fields does, and a hook that never
# looks at `event.call` (a no-op hook, a counter by kind) then costs no CallInfo at all. Its attempts follow the
# fixed fields, in order. It never refers to a CallInfo (which refers to it): no reference cycle, so a call's
# record and all it holds go as soon as the last event or CallInfo that reads it does.
Record: TypeAlias = list[Any]
_METHOD, _PATH, _SERVER, _HEAR, _PENDING, _STARTED, _STATUS, _ERROR, _ELAPSED, _WAITED, _RETRIES, _KEYS = range(12)
_ATTEMPTS = 12
PENDING = _PENDING
"""Where a record holds the work of an async CallStarted hook, for the transport to await (`pending`)."""


def _record(method: str, path: str, server: str, hear: Listeners | None, started: float) -> Record:
    return [method, path, server, hear, None, started, None, None, None, 0.0, 0, 0]


class _Field(Generic[T]):
    """A field read from the call's record (item `at`), on a CallInfo or an event: read-only, always current."""

    __slots__ = ("at",)

    def __init__(self, at: int) -> None:
        self.at = at

    @overload
    def __get__(self, view: None, owner: type[Any]) -> _Field[T]: ...
    @overload
    def __get__(self, view: CallInfo | _Event, owner: type[Any]) -> T: ...
    def __get__(self, view: CallInfo | _Event | None, owner: type[Any]) -> _Field[T] | T:
        return self if view is None else cast(T, view._r[self.at])


class CallInfo:
    """One facade call (a method of a client, all its requests and retries), as it goes and once it ended.
    It reads the call's record, so what it says is always up to date. Two CallInfos of the same call are equal
    (`==`, and as dict keys), though `event.call` may give a new one each time."""

    __slots__ = ("_r",)

    def __init__(self, method: str, path: str, server: str = "") -> None:
        self._r = _record(method, path, server, NO_HOOKS, 0.0)

    method: _Field[str] = _Field(_METHOD)
    path: _Field[str] = _Field(_PATH)  # without query values
    server: _Field[str] = _Field(_SERVER)  # where it was sent: the client's base_url (scheme, host, port, prefix)
    status: _Field[int | None] = _Field(_STATUS)  # the last answer's status (the error's, for an HTTP error)
    error: _Field[str | None] = _Field(_ERROR)  # the class name of what the call raised; None on success
    elapsed: _Field[float | None] = _Field(_ELAPSED)  # seconds, once finished
    waited: _Field[float] = _Field(_WAITED)  # seconds waited for a budget or a pause after a 429 (not backoff)
    retries: _Field[int] = _Field(_RETRIES)
    keys_fetched: _Field[int] = _Field(_KEYS)

    @property
    def exchanges(self) -> list[Exchange]:
        """The HTTP attempts so far, in order (retries and a practice-key fetch included)."""
        return [_exchange(self._r, at) for at in range(len(self._r) - _ATTEMPTS)]

    @property
    def attempts(self) -> int:
        """HTTP attempts sent (retries and a practice-key fetch included)."""
        return len(self._r) - _ATTEMPTS

    @property
    def request_id(self) -> str | None:
        """The last request id the server gave, if any."""
        return next((e.request_id for e in reversed(self.exchanges) if e.request_id), None)

    @property
    def finished(self) -> bool:
        return self._r[_ELAPSED] is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallInfo) and other._r is self._r

    def __hash__(self) -> int:
        return id(self._r)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _CALL_FIELDS)
        return f"CallInfo({fields})"


_CALL_FIELDS = (
    "method",
    "path",
    "server",
    "exchanges",
    "status",
    "error",
    "elapsed",
    "waited",
    "retries",
    "keys_fetched",
)


def _info(r: Record) -> CallInfo:
    """A CallInfo of the call (equal to every other one of it): made when asked for, and not kept by the record."""
    info = _new(CallInfo)
    info._r = r
    return info


def _exchange(r: Record, at: int) -> Exchange:
    """The call's attempt number `at` (from 0), made an Exchange when first asked for."""
    item = r[_ATTEMPTS + at]
    if type(item) is tuple:
        item = r[_ATTEMPTS + at] = Exchange(*item)
    return cast(Exchange, item)


_new = object.__new__  # a CallInfo made this way skips __init__'s frame: a third of what making it costs


class _EventType(type):
    """The events' metaclass. At run time an event class has no `__init__`: the transport makes an event with
    `type.__call__` bound to its class (`_maker`), which runs no Python frame and skips the generic wrapper
    `object.__new__` goes through (about 300 instructions an event on 3.11, 400 on 3.12). Making one by hand,
    `Kind(call, *fields)` (to test a hook), comes here instead; type checkers read each class's signature from
    its declared `__init__`."""

    if not TYPE_CHECKING:

        def __call__(cls, call, *values):
            given = cls._given
            if len(values) != len(given):
                raise TypeError(f"{cls.__name__} takes call and {', '.join(given) or 'nothing else'}")
            event = type.__call__(cls)
            event._r = call._r
            for name, value in zip(given, values, strict=True):
                object.__setattr__(event, name, value)
            return event


def _maker(kind: type[E]) -> Callable[[], E]:
    """Makes an event of `kind` with nothing set: `type.__call__` bound to the class, the cheapest way there is."""
    return cast(Callable[[], E], cast(Any, type.__call__).__get__(kind))


class _Event(metaclass=_EventType):
    """What every event has: the call it belongs to (`call`, made from the call's record when asked for)."""

    __slots__ = ("_r",)
    _fields: ClassVar[tuple[str, ...]] = ()  # what repr shows
    _given: ClassVar[tuple[str, ...]] = ()  # what making one by hand takes after `call`
    _r: Record

    @property
    def call(self) -> CallInfo:
        return _info(self._r)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in ("call", *self._fields))
        return f"{type(self).__name__}({fields})"


def _event(kind: type[E], r: Record, *values: Any) -> E:
    """An event of a kind seldom told (a retry, a wait, a key fetch)."""
    event = cast(E, type.__call__(kind))
    event._r = r
    for name, value in zip(kind._given, values, strict=True):
        object.__setattr__(event, name, value)
    return event


class CallStarted(_Event):
    __slots__ = ()

    if TYPE_CHECKING:

        def __init__(self, call: CallInfo) -> None: ...


class RequestSent(_Event):
    __slots__ = _fields = _given = ("method", "path", "attempt")
    method: str
    path: str
    attempt: int

    if TYPE_CHECKING:

        def __init__(self, call: CallInfo, method: str, path: str, attempt: int) -> None: ...


class ResponseReceived(_Event):
    """An attempt ended: an answer, or no answer (`exchange.error`)."""

    __slots__ = _given = ("at",)
    _fields = ("exchange",)
    at: int  # the attempt's place in `call.exchanges`

    if TYPE_CHECKING:

        def __init__(self, call: CallInfo, at: int) -> None: ...

    @property
    def exchange(self) -> Exchange:
        return _exchange(self._r, self.at)


class RetryScheduled(_Event):
    __slots__ = _fields = _given = ("method", "path", "attempt", "reason", "delay")
    method: str
    path: str
    attempt: int  # the attempt that failed
    reason: str  # its status ("503", "429") or error ("ReadTimeout", "unreadable body")
    delay: float  # seconds until the next attempt (after a 429: the key's pause)

    if TYPE_CHECKING:

        def __init__(self, call: CallInfo, method: str, path: str, attempt: int, reason: str, delay: float) -> None: ...


class Waiting(_Event):
    """The call waits before it may send: `reason` "budget" (the key's rate budget or its pause after a 429),
    "rate_limit" (the client-wide rate), or another module's own name."""

    __slots__ = _fields = _given = ("reason", "seconds")
    reason: str
    seconds: float

    if TYPE_CHECKING:

        def __init__(self, call: CallInfo, reason: str, seconds: float) -> None: ...


class KeyFetched(_Event):
    """A practice's key was fetched with the partner key (`refreshed`: because IntakeQ refused the cached one)."""

    __slots__ = _fields = _given = ("practice", "refreshed", "elapsed")
    practice: str  # the practice's Id or external ID, as the caller named it
    refreshed: bool
    elapsed: float

    if TYPE_CHECKING:

        def __init__(self, call: CallInfo, practice: str, refreshed: bool, elapsed: float) -> None: ...


class CallFinished(_Event):
    """The call returned or raised; what it came to is read from its record, which no longer changes."""

    __slots__ = ()
    _fields = ("status", "error", "attempts", "elapsed")

    if TYPE_CHECKING:

        def __init__(self, call: CallInfo) -> None: ...

    status: _Field[int | None] = _Field(_STATUS)
    error: _Field[str | None] = _Field(_ERROR)

    @property
    def attempts(self) -> int:
        return len(self._r) - _ATTEMPTS

    @property
    def elapsed(self) -> float:
        return cast(float, self._r[_ELAPSED] or 0.0)


# The four kinds every observed call tells, made the cheapest way.
_make_started, _make_sent = _maker(CallStarted), _maker(RequestSent)
_make_received, _make_finished = _maker(ResponseReceived), _maker(CallFinished)


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


class _Fanout:
    """Several listeners of one kind of event, called as one: each in turn (one that raises is logged and the
    others still hear it); what they give back to await is awaited together."""

    __slots__ = ("listeners",)

    def __init__(self, listeners: tuple[Hook, ...]) -> None:
        self.listeners = listeners

    def __call__(self, event: Event) -> Awaitable[None] | None:
        return _tell(self.listeners, event)


class Listeners:
    """A client's hooks, resolved once (when it is made, or a view with other hooks): who hears each kind of
    event, as one callable (the hook itself, or a `_Fanout` of several) or None. A call then builds an event only
    when someone hears its kind, and tells it with one call."""

    __slots__ = ("_plus", "answered", "any", "finished", "hooks", "key", "retry", "sent", "started", "waiting")

    def __init__(self, hooks: tuple[Hook, ...], listeners: Sequence[Hook] | None = None) -> None:
        self.hooks = hooks
        """As given (what `options["hooks"]` shows)."""
        heard = [
            (h.hook, h.kinds) if isinstance(h, _ForKinds) else (h, frozenset(KINDS))
            for h in (hooks if listeners is None else listeners)
        ]

        def hearing(kind: type[Event]) -> Hook | None:
            found = tuple(hook for hook, kinds in heard if kind in kinds)
            return None if not found else found[0] if len(found) == 1 else _Fanout(found)

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


_RECORDERS: contextvars.ContextVar[tuple[list[CallInfo], ...]] = contextvars.ContextVar("intakeq_rec", default=())
_REFRESHING: contextvars.ContextVar[bool] = contextvars.ContextVar("intakeq_refreshing", default=False)
CALLS: dict[asyncio.Task[Any], Record] = {}
"""The record of the observed call each task has under way (and of the call a shared key fetch is part of, for
the task that fetches it): the transport looks its record up once a request, by the task it already has in hand.
A dict and not a context variable: with one set, every context-variable lookup in a call (ours, asyncio's, the
HTTP stack's) searches a mapping instead of finding it empty, and the sets themselves make a token and a mapping;
together that was a third of what a no-op hook cost. So a task that a call starts is not part of it, except the
key fetch (`share_call`), and an entry is gone once its call ends."""


def current() -> Record | None:
    """The record of the observed call under way in this task, or None (for code that does not have the task)."""
    return CALLS.get(asyncio.current_task()) if CALLS else None  # type: ignore[arg-type]


def share_call(task: asyncio.Task[Any]) -> None:
    """Make `task`, started by the current call to do some of its work (a practice-key fetch that other calls may
    wait on too), part of that call: its requests, waits and key fetch are told as the call's."""
    r = current()
    if r is not None:
        CALLS[task] = r
        task.add_done_callback(_unshare)


def _unshare(task: asyncio.Task[Any]) -> None:
    CALLS.pop(task, None)


# Listeners that come with the library, each asked at every call whether it listens now (None: not now).
_ambient: tuple[Callable[[], Hook | None], Callable[[], Hook | None]] | None = None


def _ambient_listeners() -> tuple[Callable[[], Hook | None], Callable[[], Hook | None]]:
    global _ambient
    if _ambient is None:
        from ._logs import log_listener
        from ._otel import otel_listener

        _ambient = (log_listener, otel_listener)
    return _ambient


def begin(
    hooks: Listeners, method: str, path: str, clock: Callable[[], float], server: str, task: asyncio.Task[Any]
) -> Record | None:
    """A record for a call about to start in `task`, or None: nobody listens, or it is part of an observed call."""
    under_way = CALLS.get(task) if CALLS else None
    if under_way is not None and under_way[_HEAR] is not None:
        return None
    log, otel = _ambient or _ambient_listeners()
    logs, traces = log(), otel()
    if traces is None:  # as is usual: asked at every call, so asked as cheaply as can be
        listeners = hooks if logs is None else hooks.plus((logs,))
    else:
        listeners = hooks.plus((traces,) if logs is None else (logs, traces))
    recorders = _RECORDERS.get()
    if not listeners.any and not recorders:
        return None
    r: Record = [method, path, server, listeners, None, clock(), None, None, None, 0.0, 0, 0]  # as _record()
    for recorder in recorders:
        recorder.append(_info(r))
    CALLS[task] = r
    if (heard := listeners.started) is not None:  # told here: a function of its own cost a tenth of it all
        event = _make_started()
        event._r = r
        try:
            result = heard(event)
        except Exception:
            _blame(heard, event)
        except BaseException as exc:  # KeyboardInterrupt, say: the call ends before it began
            if (later := finish(r, task, exc, r[_STARTED])) is not None:
                cast(Coroutine[Any, Any, None], later).close()  # nobody is left to await an async hook's work
            raise
        else:
            if result is not None:
                r[_PENDING] = _later(heard, result, event)
    return r


async def pending(r: Record) -> None:
    """Await what an async CallStarted hook gave back (`r[PENDING]`, not None), before the call goes on."""
    later, r[_PENDING] = r[_PENDING], None
    await later


# Telling listeners. Each kind has one listener to call (a hook, or a _Fanout of several), and where a frequent
# event is made the call is written out: a call with a hook that hears everything tells four events, and a
# function call for each would cost a fifth of their CPU.


def _tell(listeners: tuple[Hook, ...], event: Event) -> Awaitable[None] | None:
    """Call each listener; what is returned (async hooks' work) must be awaited. Sync, so that a call with only
    plain hooks costs no coroutine per event: the transport awaits only what comes back."""
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


def _call(listener: Hook, event: Event) -> Awaitable[None] | None:
    """Tell `listener` (a hook or a _Fanout): what it gave back to await, or None."""
    try:
        result = listener(event)
    except Exception:
        _blame(listener, event)
        return None
    return None if result is None else _later(listener, result, event)


def _later(listener: Hook, result: object, event: Event) -> Awaitable[None] | None:
    """What one listener returned (not None): its work to await, if it is an awaitable."""
    return _settle([(listener, result)], event) if inspect.isawaitable(result) else None


async def _settle(pending: list[tuple[Hook, Awaitable[Any]]], event: Event) -> None:
    for listener, result in pending:
        try:
            await result
        except Exception:
            _blame(listener, event)


def finish(r: Record, task: asyncio.Task[Any], raised: BaseException | None, now: float) -> Awaitable[None] | None:
    """The call ended at `now` (by the transport's clock), returning (`raised` None) or raising."""
    CALLS.pop(task, None)
    if raised is not None:
        r[_ERROR] = type(raised).__name__
        status = getattr(raised, "status_code", None)
        r[_STATUS] = status if isinstance(status, int) else None
    r[_ELAPSED] = now - r[_STARTED]
    heard = r[_HEAR].finished
    r[_HEAR] = None  # ended: no event is told of it again, and a record kept (record_calls) keeps no hook alive
    if heard is None:
        return None
    event = _make_finished()
    event._r = r
    try:
        result = heard(event)
    except Exception:
        _blame(heard, event)
        return None
    return None if result is None else _later(heard, result, event)


def sent(r: Record, method: str, path: str, attempt: int) -> Awaitable[None] | None:
    listeners = r[_HEAR]
    if listeners is None or (heard := listeners.sent) is None:
        return None  # an ended call's record, or nobody hears this kind
    event = _make_sent()
    event._r, event.method, event.path, event.attempt = r, method, path, attempt + 1
    try:
        result = heard(event)
    except Exception:
        _blame(heard, event)
        return None
    return None if result is None else _later(heard, result, event)


def answered(
    r: Record,
    method: str,
    path: str,
    attempt: int,
    outcome: object,
    elapsed: float,
    retry_in: float | None,
    key: Secret,
) -> Awaitable[None] | None:
    """An attempt's outcome: a Response, an httpx.TransportError, or one of our errors carrying a status;
    `key`, the key it was sent with, is masked wherever a header echoes it."""
    listeners = r[_HEAR]
    if listeners is None:
        return None  # an ended call's record
    status: int | None
    if isinstance(outcome, httpx.Response):  # its headers are read (and masked) only if asked for
        status = r[_STATUS] = outcome.status_code
        error = None
        r.append((method, path, attempt + 1, status, None, elapsed, retry_in, outcome.headers, key.weak))
    else:
        error = _ERRORS.get(type(outcome).__name__, type(outcome).__name__)
        status = getattr(outcome, "status_code", None)
        if status is not None:
            r[_STATUS] = status
        r.append((method, path, attempt + 1, status, error, elapsed, retry_in, {}, None))
    later = None
    if (heard := listeners.answered) is not None:
        event = _make_received()
        event._r, event.at = r, len(r) - _ATTEMPTS - 1
        try:
            result = heard(event)
        except Exception:
            _blame(heard, event)
        else:
            if result is not None:
                later = _later(heard, result, event)
    if retry_in is not None:
        r[_RETRIES] += 1
        if (heard := listeners.retry) is not None:
            reason = str(status) if error is None else error
            retry = _call(heard, _event(RetryScheduled, r, method, path, attempt + 1, reason, retry_in))
            if retry is not None:
                later = retry if later is None else _both(later, retry)
    return later


async def _waiting(r: Record, seconds: float, reason: str) -> None:
    listeners = r[_HEAR]
    if listeners is None:
        return  # an ended call's record
    r[_WAITED] += seconds
    heard = listeners.waiting
    if heard is not None and (later := _call(heard, _event(Waiting, r, reason, seconds))) is not None:
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
    r = current()
    if r is not None and seconds > 0:
        await _waiting(r, seconds, reason)


def noting_waits(sleep: Callable[[float], Awaitable[None]], reason: str) -> Callable[[float], Awaitable[None]]:
    """`sleep`, reporting each wait as a Waiting event of the current call."""

    async def noted(seconds: float) -> None:
        r = current()
        if r is not None and seconds > 0:
            await _waiting(r, seconds, reason)
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
    r = current()
    if r is not None and r[_HEAR] is not None:
        r[_KEYS] += 1
        heard = r[_HEAR].key
        if heard is not None:
            event = _event(KeyFetched, r, practice, _REFRESHING.get(), elapsed)
            if (later := _call(heard, event)) is not None:
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
