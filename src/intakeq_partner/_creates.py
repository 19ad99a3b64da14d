"""Creates keyed by an external ID: one object per external ID, however often and from wherever it is asked.

IntakeQ has no idempotency keys, but practices, practitioners and assistants take an external ID that IntakeQ
keeps unique (a second create with it is answered 409). That makes such a create safe to repeat, concurrently
and from several processes, when every create follows one rule (`Sender.create_once` applies it):

- within one client (its connection pool, which its views and practice clients share), concurrent creates
  with one external ID share one request (single flight); the others settle against its result;
- a 409, or an attempt whose outcome is unknown (a dropped connection, a timeout, a 5xx, an answer that could
  not be read), is followed by a look-up by the external ID before anything else is decided;
- what is found is compared with what the caller asked for (`differences`): the same, it is returned as if
  just created; different, a ConflictError carries it as `existing` and the caller decides. Nothing found
  after a 409: the 409 stands (something else conflicted, say an email in use).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import attrs

from ._errors import ConflictError
from ._wire import unstructure

T = TypeVar("T")

# Text IntakeQ matches without regard to case (an email, a role name): compared casefolded.
_CASELESS_SUFFIXES = ("Email", "RoleName")


@dataclass(frozen=True, slots=True)
class ExternalKey(Generic[T]):
    """What makes one create safe to repeat: the external ID it sets, and how to find and judge what holds it."""

    what: str  # "practice", "practitioner", "assistant": names it in errors
    field: str  # the external ID's wire name, e.g. "ExternalPracticeId"
    value: str
    find: Callable[[], Awaitable[T | None]]  # the object holding this external ID, or None
    differences: Callable[[T], Awaitable[list[str]]]  # the fields the caller set that it holds otherwise


def differences(asked: Any, found: Any, reported: frozenset[str] = frozenset()) -> list[str]:
    """The attributes the create body `asked` sets that the object `found` holds otherwise, as IntakeQ would
    store them: text trimmed (and emails and role names without case), lists as sets. A field the answer does
    not report (None), or that the read model does not have, cannot be compared and is not a difference,
    unless its wire name is in `reported`: fields IntakeQ's answer always carries, so None there means the
    object holds none (someone else's practice without the city this create asks for), and only a blank
    text asked for is the same."""
    readable = {f.metadata["wire"]: f.name for f in attrs.fields(type(found)) if not f.metadata.get("extra")}
    differ = []
    for wire, wanted in unstructure(asked).items():
        name = readable.get(wire)
        if name is None:
            continue
        held = getattr(found, name)
        if held is None:
            if wire in reported and not (isinstance(wanted, str) and not wanted.strip()):
                differ.append(name)
        elif not _same(wire, wanted, held):
            differ.append(name)
    return differ


def _same(wire: str, wanted: Any, held: Any) -> bool:
    if isinstance(wanted, str) and isinstance(held, str):
        asked, holds = wanted.strip(), held.strip()
        return asked.casefold() == holds.casefold() if wire.endswith(_CASELESS_SUFFIXES) else asked == holds
    if isinstance(wanted, list) and isinstance(held, list):
        return set(wanted) == set(held)
    return bool(wanted == held)


async def settle(found: T, key: ExternalKey[T], path: str, conflict: ConflictError | None = None) -> T:
    """`found` when it is what the caller asked for; otherwise a ConflictError that carries it."""
    differ = await key.differences(found)
    if not differ:
        return found
    raise ConflictError(
        status_code=409,
        method="POST",
        path=path,
        request_id=conflict.request_id if conflict is not None else None,
        body_excerpt=conflict.body_excerpt if conflict is not None else "",
        message=(
            f"{key.field} {key.value!r} is already in use by a {key.what} whose {', '.join(differ)} differ "
            "from this create's (the exception's `existing` holds it)"
        ),
        existing=found,
    )


class Flights:
    """The creates in flight through one connection pool, by (owner, kind, external ID): a later create with
    the same key waits for the first and settles against its result instead of sending its own."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, name: Hashable, key: ExternalKey[T], path: str, create: Callable[[], Awaitable[T]]) -> T:
        while (flight := self._flights.get(name)) is not None:
            # shield: a waiter that gives up (its call_timeout, a cancelled request) must not cancel the flight.
            done = await asyncio.shield(flight)
            if done is not None:
                result: T = await settle(done, key, path)
                return result
            # The create we waited for failed or was cancelled: go ourselves (or wait for whoever went first).
        flight = asyncio.get_running_loop().create_future()
        self._flights[name] = flight
        created: T | None = None
        try:
            created = await create()
            return created
        finally:
            del self._flights[name]
            flight.set_result(created)  # None (a failure) sends each waiter to try for itself


_flights: weakref.WeakKeyDictionary[object, Flights] = weakref.WeakKeyDictionary()


def flights_of(pool: object) -> Flights:
    """The one Flights of a connection pool (shared by every client and view that sends through it)."""
    flights = _flights.get(pool)
    if flights is None:
        flights = _flights[pool] = Flights()
    return flights
