"""``FakeIntakeQ``: the object tests hold; it owns the state, the fault plan, the counters and the app."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .._generated import models
from ._app import FakeApp, classify
from ._faults import Faults, RateLimiter, RequestRecord, Stats
from ._requests import from_wire
from ._server import serve as _serve
from ._state import (
    DEFAULT_MASTER_FORMS,
    DEFAULT_ROLES,
    LIST_PAGINGS,
    UPDATE_SEMANTICS,
    Assistant,
    Form,
    Intake,
    ListPaging,
    MasterFormSpec,
    Practice,
    Practitioner,
    State,
    TimestampForm,
    UpdateSemantics,
    one_of,
    stamper,
)
from ._transport import FakeTransport

PracticeRef = str | Practice
PractitionerRef = str | Practitioner


class FakeIntakeQ:
    """A stateful, in-memory IntakeQ partner service with seeded fault injection.

    Use ``fake.client()`` (or ``fake.transport()``) to talk to it in-process, or ``async with fake.serve()``
    to reach it over loopback. Both run the same ASGI app, ``fake.app``.

    ``log_limit`` caps ``requests`` (the request log) at the newest that many records; None (the default)
    keeps them all. The counters in ``stats`` count every request either way.

    Where IntakeQ's document can be read more than one way, a setting picks the reading the fake plays, so a
    client can be tested against each (all can be changed between requests too):

    - ``timestamps``: "documented" (ISO 8601 on partner objects, practitioners and assistants, Unix
      milliseconds on intakes, as the document and IntakeQ's C# client show), "iso", "unix-ms",
      "unix-ms-float" (milliseconds as a JSON float with the microseconds as fraction) or "iso-7" (seven
      fractional digits and ``Z``), that form everywhere, or "mixed" (all four take turns, object by object).
    - ``list_paging``: how the lists (practices, practitioners, assistants) page. "all" (the document: no
      ``page`` means everything; ``page=N`` gives ``page_size`` records), "paged" (no ``page`` means the first
      page, as IntakeQ's other lists do), or "ignores-page" (every call answers everything, whatever ``page``).
    - ``update_semantics``: what a PUT does with a field its body leaves out. "merge" keeps it; "replace"
      clears it (an assistant's ``PractitionerIds`` then becomes empty, which means all practitioners).
    """

    base_url = "http://127.0.0.1"
    """Base URL for in-process use: a loopback URL, which the real client accepts without TLS."""

    def __init__(
        self,
        partner_key: str | None = None,
        *,
        seed: int | None = None,
        faults: Faults | None = None,
        page_size: int = 100,
        roles: Sequence[str] = DEFAULT_ROLES,
        master_forms: Sequence[MasterFormSpec] = DEFAULT_MASTER_FORMS,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        form_token_ttl: timedelta = timedelta(hours=1),
        ephemeral_token_ttl: timedelta = timedelta(minutes=5),
        session_ttl: timedelta = timedelta(hours=1),
        log_limit: int | None = None,
        timestamps: TimestampForm = "documented",
        list_paging: ListPaging = "all",
        update_semantics: UpdateSemantics = "merge",
    ) -> None:
        seeds = random.Random(seed)
        # Two streams: creating data never shifts the fault sequence, and vice versa.
        self._fault_rng = random.Random(seeds.getrandbits(64))
        data_rng = random.Random(seeds.getrandbits(64))
        self._base_clock = clock or (lambda: datetime.now(UTC))
        self._clock_offset = timedelta()
        self.partner_key = partner_key or f"{data_rng.getrandbits(128):032x}"
        self.faults = faults or Faults()
        self.page_size = page_size
        self.stats = Stats(log_limit=log_limit)
        self.state = State(
            rng=data_rng,
            clock=self.now,
            roles=roles,
            master_forms=master_forms,
            form_token_ttl=form_token_ttl,
            ephemeral_token_ttl=ephemeral_token_ttl,
            session_ttl=session_ttl,
            timestamps=timestamps,
            list_paging=list_paging,
            update_semantics=update_semantics,
        )
        self._timestamps = timestamps
        self._limiter = RateLimiter(monotonic)
        self._hang_waiters: set[asyncio.Future[None]] = set()
        self.app = FakeApp(self)

    # ----- readings of the document

    @property
    def timestamps(self) -> TimestampForm:
        """How timestamps are written: "documented", "iso", "unix-ms", "unix-ms-float", "iso-7" or "mixed"."""
        return self._timestamps

    @timestamps.setter
    def timestamps(self, form: TimestampForm) -> None:
        self.state.stamp = stamper(form)
        self._timestamps = form

    @property
    def list_paging(self) -> ListPaging:
        """How the practice list pages: "all", "paged" or "ignores-page"."""
        paging: ListPaging = self.state.list_paging
        return paging

    @list_paging.setter
    def list_paging(self, paging: ListPaging) -> None:
        self.state.list_paging = one_of("list_paging", paging, LIST_PAGINGS)

    @property
    def update_semantics(self) -> UpdateSemantics:
        """What a PUT does with fields it leaves out: "merge" keeps them, "replace" clears them."""
        semantics: UpdateSemantics = self.state.update_semantics
        return semantics

    @update_semantics.setter
    def update_semantics(self, semantics: UpdateSemantics) -> None:
        self.state.update_semantics = one_of("update_semantics", semantics, UPDATE_SEMANTICS)

    # ----- time

    def now(self) -> datetime:
        """The fake's clock: the injected clock plus whatever ``advance_clock`` added."""
        return self._base_clock() + self._clock_offset

    def advance_clock(self, by: timedelta | float) -> None:
        """Move the fake's clock forward (seconds or a timedelta), e.g. to expire form tokens."""
        self._clock_offset += by if isinstance(by, timedelta) else timedelta(seconds=by)

    def _wall_clock(self) -> float:
        return self.now().timestamp()

    # ----- ways in

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport running the app in-process, honouring read timeouts and dropped connections."""
        return FakeTransport(self.app)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` on ``transport()``, with ``base_url`` defaulting to ``self.base_url``."""
        kwargs.setdefault("base_url", self.base_url)
        return httpx.AsyncClient(transport=self.transport(), **kwargs)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> contextlib.AbstractAsyncContextManager[str]:
        """Serve over loopback in the running loop; yields the base URL (port 0 picks a free port)."""
        return _serve(self.app, host, port, self._release_hangs)

    async def _hang(self, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hang_waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            pass
        finally:
            self._hang_waiters.discard(waiter)

    def _release_hangs(self) -> None:
        for waiter in list(self._hang_waiters):
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_finish, waiter)

    def _classify(self, key: str | None) -> str:
        return classify(self.partner_key, key, self.state)

    # ----- inspection

    @property
    def practices(self) -> list[Practice]:
        """All practices, in creation order."""
        return list(self.state.practices.values())

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request seen, oldest first (method, raw path, route template, status, key class, fault).

        Only the newest ``log_limit`` when the fake was made with one; ``stats.logged`` counts them all.
        """
        return self.stats.log

    def reset_stats(self) -> None:
        """Clear counters, the request log and the rate-limit windows (state is kept)."""
        self.stats.reset()
        self._limiter.reset()

    def practice(self, ref: PracticeRef) -> Practice:
        """A practice by Id or external ID (KeyError when unknown)."""
        if isinstance(ref, Practice):
            return ref
        try:
            return self.state.practice(ref)
        except Exception:
            raise KeyError(ref) from None

    def practitioner(self, practice: PracticeRef, ref: PractitionerRef) -> Practitioner:
        if isinstance(ref, Practitioner):
            return ref
        try:
            return self.state.practitioner(self.practice(practice), ref)
        except KeyError:
            raise
        except Exception:
            raise KeyError(ref) from None

    def practitioners(self, practice: PracticeRef) -> list[Practitioner]:
        return list(self.practice(practice).practitioners.values())

    def assistants(self, practice: PracticeRef) -> list[Assistant]:
        return list(self.practice(practice).assistants.values())

    def forms(self, practice: PracticeRef) -> list[Form]:
        return list(self.practice(practice).forms.values())

    def intakes(self, practice: PracticeRef) -> list[Intake]:
        return list(self.practice(practice).intakes.values())

    def client_data(self, practice: PracticeRef, practitioner: PractitionerRef) -> int:
        """Client data records the practitioner holds."""
        return self.practitioner(practice, practitioner).client_data

    @property
    def master_forms(self) -> list[Form]:
        return list(self.state.master_forms.values())

    def practice_key(self, practice: PracticeRef) -> str:
        return self.practice(practice).key

    def rotate_practice_key(self, practice: PracticeRef) -> str:
        """Issue a new key for the practice; the old one gets 401 from now on."""
        return self.state.rotate_key(self.practice(practice))

    # ----- seeding

    def add_role(self, name: str) -> None:
        self.state.add_role(name)

    def add_master_form(
        self,
        name: str,
        type: str = "Questionnaire",
        questions: Sequence[str] | int = 0,
        consent_forms: Sequence[str] = (),
    ) -> Form:
        return self.state.add_master_form(MasterFormSpec(name, type, questions, consent_forms))

    def add_practice_form(
        self,
        practice: PracticeRef,
        name: str,
        type: str = "Questionnaire",
        questions: Sequence[str] | int = 0,
        consent_forms: Sequence[str] = (),
    ) -> Form:
        return self.state.add_practice_form(self.practice(practice), name, type, questions, consent_forms)

    def add_practice(self, **fields: Any) -> Practice:
        """Create a practice directly, with the wire's field names (PracticeName, FirstName, ...)."""
        body = {"PracticeName": "Practice", "FirstName": "Pat", "LastName": "Doe", "Email": "pat@example.com"}
        body.update(fields)
        return self.state.create_practice(from_wire(models.PracticeCreate, body, "create_practice"))

    def add_client_data(
        self, practice: PracticeRef, practitioner: PractitionerRef, n: int = 1, *, owned_clients: int = 0
    ) -> None:
        """Give a practitioner client data (and optionally owned clients), so deleting them is refused."""
        p = self.practice(practice)
        self.state.add_client_data(p, self.practitioner(p, practitioner), n, owned_clients)


def _finish(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
