"""How the facade sends one generated operation: its request, the right key, the decoded answer.

A Sender is bound to one key scope ("partner" or "practice") and refuses operations of the other scope, so
a partner key can never reach a v1 endpoint nor a practice key a partner endpoint, whatever code calls it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, TypeVar

import attrs
import httpx

from ._creates import ExternalKey, flights_of, settle
from ._errors import ConflictError, IntakeQError, InvalidRequestError, NotFoundError, is_ambiguous
from ._secret import Secret
from ._steps import parse_in_steps
from ._transport import Transport
from ._wire import RequestSpec, WireError, encode_query, merge_update, parse_json

T = TypeVar("T")
U = TypeVar("U")  # an update body
C = TypeVar("C")  # the object as read
SendWithKey = Callable[[Secret], Awaitable[Any]]
# Runs a send with the right key (and, for practice keys, refreshes a refused key once).
KeyRunner = Callable[[SendWithKey], Awaitable[Any]]


# Where each key may go: the escape hatch holds undocumented endpoints to the same key policy as typed calls.
SCOPE_PREFIXES = {"partner": "/api/partner/", "practice": "/api/v1/"}
RAW_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
_DOT_SEGMENTS = {".", "..", "%2e", "%2e%2e", ".%2e", "%2e."}


class _Updates:
    """Per connection pool (so shared by a partner client, every practice client it hands out and every
    `with_options` view of them): one lock per object being updated, and how many updates of each kind of
    object (per owner) have ended, so that an update can tell whether another one wrote while it was reading."""

    def __init__(self) -> None:
        self.locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()
        self.ended: dict[Hashable, int] = {}

    def lock(self, key: Hashable) -> asyncio.Lock:
        lock = self.locks.get(key)
        if lock is None:
            lock = self.locks[key] = asyncio.Lock()  # gone again once no update holds it
        return lock


_updates: weakref.WeakKeyDictionary[object, _Updates] = weakref.WeakKeyDictionary()


class Sender:
    """Sends generated operations of one key scope through the shared transport.

    `owner` names whose objects this sender updates ("partner", the practice, or a token an own-key practice
    client shares with its views), so that two updates of one object through this pool never interleave their
    read and write.
    """

    def __init__(self, transport: Transport, scope: str, with_key: KeyRunner, owner: Hashable) -> None:
        self.transport = transport
        self.scope = scope
        self._with_key = with_key
        self._owner = owner

    def __repr__(self) -> str:
        return f"Sender(scope={self.scope!r})"

    async def send(self, request: RequestSpec, parse: Callable[[httpx.Response, RequestSpec], T]) -> T:
        """Send one request of a generated operation with this sender's key; return `parse` of the answer.

        This is the seam between the generated code and the facade: each generated `asyncio(sender, ...)`
        builds its typed request and parser and hands them here. Whether a failed attempt may be repeated is
        the operation's own (`x-idempotent` in the spec), carried by the request.
        """
        if request.key_scope != self.scope:
            # Only code reaching past the facade gets here (our own methods never mix scopes): nothing is sent.
            raise InvalidRequestError(
                f"{request.method} {request.path} needs the {request.key_scope} key: "
                f"a {self.scope} client cannot send it (nothing was sent)"
            )

        if self.transport.strict_responses and not request.strict:
            request = attrs.evolve(request, strict=True)

        async def attempt(key: Secret) -> T:
            return await self.transport.request(
                request.method,
                request.path,
                key=key,
                params=request.params or None,
                json=request.json,
                idempotent=request.idempotent,
                parse=lambda response: parse_in_steps(parse, response, request),
            )

        # The call as a whole (a key fetch or refresh included) is what call_timeout and aclose() bound.
        result: T = await self.transport.bounded(self._with_key(attempt), request.method, request.path)
        return result

    async def create_once(self, create: Callable[[], Awaitable[T]], key: ExternalKey[T] | None, *, path: str) -> T:
        """POST a create (`create()`, a generated operation's call) without ever making a duplicate.

        IntakeQ has no idempotency keys; an external ID (`key`) stands in for one (the rule is in _creates.py):
        concurrent creates with one external ID through this pool share one request; a 409, or an attempt that
        may have landed (a dropped connection, a timeout, a 5xx, a garbled answer), is followed by a look-up
        by that ID, and what is found is returned when it is what was asked for, else carried by ConflictError
        as `existing`. Only when the look-up finds nothing is an uncertain attempt posted again. Without an
        external ID there is nothing to look up by, so such an attempt is not repeated. Look-ups, waits and
        posts fall under one call_timeout (`path` names the create in its errors).
        """
        if key is None:
            return await create()
        pool = self.transport._channel  # the pool's HTTP client, which all views share
        flight = flights_of(pool).run(
            (self._owner, key.what, key.value), key, path, lambda: self._create(create, key, path)
        )
        return await self.transport.bounded(flight, "POST", path)

    async def _create(self, create: Callable[[], Awaitable[T]], key: ExternalKey[T], path: str) -> T:
        attempt = 0
        while True:
            try:
                return await create()
            except ConflictError as exc:
                found = await key.find()
                if found is None:
                    raise  # not the external ID (or not yet visible): the 409 stands
                return await settle(found, key, path, exc)
            except IntakeQError as exc:
                if not is_ambiguous(exc):
                    raise
                found = await key.find()
                if found is not None:
                    return await settle(found, key, path)
                if attempt >= self.transport.max_retries:
                    raise
                await self.transport.pause(attempt)
                attempt += 1

    async def update_whole(
        self,
        put: Callable[[U], Awaitable[T]],
        update_cls: type[U],
        *,
        path: str,
        what: str,
        ref: str,
        read: Callable[[], Awaitable[C | None]],
        changes: Mapping[str, Any],
        current: C | None = None,
        check: Callable[[C], None] | None = None,
    ) -> T:
        """PUT a complete body: read the object (unless `current` is given), apply `changes`, send everything
        with `put` (a generated operation's call taking the body).

        IntakeQ does not say whether a PUT keeps or clears the fields its body leaves out, so nothing is left
        out. A failed read raises and sends nothing; so does an object that is not there (NotFoundError) or a
        body that cannot be completed (InvalidRequestError). `check` may refuse the read object. The read and
        the write are one call under call_timeout (a wait for another update included).

        Two updates of one object through this pool never undo each other, whether they name it by Id or by
        external ID: the write holds a lock on the object's Id (known once it is read), and an update that
        finds another of the same kind ended while it was reading reads again under that lock. With `current`
        given, that is what is sent. IntakeQ has no version check, so a change made elsewhere (another process)
        between our read and our write is still overwritten.
        """
        pool = self.transport._channel  # the pool's HTTP client, which all views share
        updates = _updates.get(pool)
        if updates is None:
            updates = _updates[pool] = _Updates()
        kind = (self._owner, what)

        async def read_or_refuse() -> C:
            found = await read()
            if found is None:
                raise NotFoundError(
                    status_code=404, method="GET", path=path, message=f"no {what} {ref!r} to update (nothing was sent)"
                )
            return found

        async def read_and_write() -> T:
            while True:
                ended = updates.ended.get(kind, 0)
                found = current if current is not None else await read_or_refuse()
                object_id = getattr(found, "id", None) or ref
                async with updates.lock((kind, object_id)):
                    if current is None and updates.ended.get(kind, 0) != ended:
                        # Another update of this kind ended while we read: what we read may predate its write.
                        found = await read_or_refuse()
                        if (getattr(found, "id", None) or ref) != object_id:
                            continue  # `ref` names another object now: lock that one instead
                    if check is not None:
                        check(found)
                    try:
                        body = merge_update(update_cls, found, changes)
                    except WireError as exc:
                        raise InvalidRequestError(
                            f"cannot complete the {what} update ({exc}): pass that field"
                        ) from None
                    try:
                        return await put(body)
                    finally:
                        updates.ended[kind] = updates.ended.get(kind, 0) + 1

        return await self.transport.bounded(read_and_write(), "PUT", path)

    async def whole(self, call: Awaitable[T], method: str, path: str) -> T:
        """Await a facade call made of several requests (a page walk, a lookup that may walk) as one call: one
        call_timeout bounds it all, and aclose() ends it (`method` and `path` name it in those errors)."""
        return await self.transport.bounded(call, method, path)

    async def raw(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool | None] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send a request the spec does not describe, under every rule a typed call follows; return its JSON.

        The path must lie under this key's prefix (/api/partner/ for the partner key, /api/v1/ for a practice
        key), with no query, fragment, empty or dot segment, so no spelling of it can reach the other scope.
        A body that is empty gives None; a success body that is not JSON is a ResponseValidationError.
        """
        if not isinstance(method, str) or method.upper() not in RAW_METHODS:
            raise InvalidRequestError(f"method must be one of {', '.join(RAW_METHODS)}, not {method!r}")
        method = method.upper()
        prefix = SCOPE_PREFIXES[self.scope]
        _check_raw_path(path, prefix, self.scope)
        query: dict[str, str] = {}
        for name, value in (params or {}).items():
            if not isinstance(name, str) or not name:
                raise InvalidRequestError("params names must be non-empty strings")
            if value is None:
                continue
            if not isinstance(value, str | int | bool):
                raise InvalidRequestError(f"params[{name!r}] must be a string, int or bool, not {type(value).__name__}")
            query[name] = encode_query(value)
        if idempotent is not None and not isinstance(idempotent, bool):
            raise InvalidRequestError("idempotent must be True, False or None")

        request = RequestSpec(method, path, self.scope, idempotent, query, json)
        return await self.send(request, lambda response, sent: parse_json(response, sent.method, sent.path))


class RequestsAnything:
    """`request()`, the escape hatch both clients offer, on top of the client's own sender."""

    _sender: Sender

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | bool | None] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Call an endpoint the typed methods do not cover (yet), e.g. one IntakeQ added after this version.

        Same rules as every typed call: this client's key, and only under its key's prefix (/api/partner/ for
        a PartnerClient, /api/v1/ for a PracticeClient, whose key is fetched and refreshed as for typed calls);
        the same retries (GET, PUT and DELETE are retried, a POST only when nothing reached the server, unless
        you pass `idempotent=True`), limits, typed errors and logging. `path` is sent as given (percent-encode
        IDs yourself); query values go in `params`. Returns the decoded JSON answer, or None for an empty body.
        """
        return await self._sender.raw(method, path, params=params, json=json, idempotent=idempotent)


def _check_raw_path(path: object, prefix: str, scope: str) -> None:
    """Refuse any path that is not plainly under `prefix`: httpx would resolve dot segments, and a path that
    climbs out of /api/v1/ could carry a practice key to a partner endpoint."""
    if not isinstance(path, str):
        raise InvalidRequestError(f"path must be a string, not {type(path).__name__}")
    if not path.startswith(prefix) or len(path) == len(prefix):
        raise InvalidRequestError(f"the {scope} key may only be sent under {prefix}: path must start with it")
    if "?" in path or "#" in path:
        raise InvalidRequestError("path must hold no query or fragment (pass params= instead)")
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" or ord(ch) == 0x7F for ch in path):
        raise InvalidRequestError("path must hold no whitespace, control characters or backslashes")
    segments = path[1:].split("/")
    if any(not segment for segment in segments[:-1]) or any(s.lower() in _DOT_SEGMENTS for s in segments):
        raise InvalidRequestError("path must hold no empty, '.' or '..' segments")
    try:
        path.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidRequestError("path must be ASCII (percent-encode what is not)") from None
