"""Shared fixtures: a fake IntakeQ, and clients that reach it in-process or over a real loopback socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis_server import RedisMissing, RedisServer, redis_server, skip_knowingly

from intakeq_partner import PartnerClient, Practice, PracticeClient
from intakeq_partner._aiohttp import AiohttpTransport
from intakeq_partner.testing import FakeIntakeQ, Faults

pytest_plugins = ["pytester"]  # tests/test_docs.py runs the README's test blocks with the package's plugin

PARTNER_KEY = "fixture-partner-key-0f3c9a"
FAST: dict[str, Any] = {"initial_delay": 0.0, "max_delay": 0.0}  # retries without waiting: fault tests stay quick


@dataclass
class Env:
    """One way of reaching the fake: the fake itself, a partner client on it, and a 'browser' for web pages."""

    mode: str
    fake: FakeIntakeQ
    partner: PartnerClient
    browser: httpx.AsyncClient
    base_url: str
    options: Callable[[], dict[str, Any]]
    """Fresh client options reaching the fake this way (in-process, each client needs its own transport)."""

    def client(self, key: str = PARTNER_KEY, **options: Any) -> PartnerClient:
        """Another partner client reaching the fake the same way (close it yourself)."""
        return PartnerClient(key, base_url=self.base_url, **{**self.options(), **options})

    def practice_client(self, key: str, **options: Any) -> PracticeClient:
        """A practice client holding its own key, reaching the fake the same way (close it yourself)."""
        return PracticeClient(key, base_url=self.base_url, **{**self.options(), **options})


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A real redis-server on a free port, for this test alone. Missing, it fails the test loudly (a green run must
    have tested the shared limiter), unless the run says it knowingly goes without (redis_server.skip_knowingly)."""
    try:
        with redis_server() as server:
            yield server
    except RedisMissing as exc:
        if skip_knowingly():
            pytest.skip(str(exc))
        pytest.fail(str(exc))


@pytest.fixture
def fake() -> FakeIntakeQ:
    return FakeIntakeQ(PARTNER_KEY, seed=20240528)


@pytest.fixture
async def http(fake: FakeIntakeQ) -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client on the fake, in-process, sending the partner key: for tests of the fake's own wire."""
    async with fake.client(headers={"X-Auth-Key": PARTNER_KEY}) as client:
        yield client


STACKS = ("httpx", "aiohttp")
"""The HTTP stacks a client can send through; every loopback test runs under each."""
MODES = ("in-process", *(f"loopback-{stack}" for stack in STACKS))


def stack_transport(stack: str) -> httpx.AsyncBaseTransport:
    """A bare transport of the given stack, for wrapping (the client would build the same by itself)."""
    return AiohttpTransport() if stack == "aiohttp" else httpx.AsyncHTTPTransport()


READINGS: dict[str, dict[str, str]] = {
    "documented": {"update_semantics": "merge", "list_paging": "all", "timestamps": "documented"},
    "replace-paged-float-ms": {"update_semantics": "replace", "list_paging": "paged", "timestamps": "unix-ms-float"},
    "replace-ignores-page-mixed": {"update_semantics": "replace", "list_paging": "ignores-page", "timestamps": "mixed"},
    "merge-paged-iso": {"update_semantics": "merge", "list_paging": "paged", "timestamps": "iso"},
}
"""Readings of the API document the fake can play (see FakeIntakeQ): together they take every value of every
setting, so a test run under each reading has met every one of them."""


def play(fake: FakeIntakeQ, reading: str) -> FakeIntakeQ:
    """Make the fake play one reading of the document."""
    for name, value in READINGS[reading].items():
        setattr(fake, name, value)
    return fake


# Every reading in-process (cheap); over loopback (the same app behind a socket), each stack under one reading.
ENV_PARAMS = [("in-process", reading) for reading in READINGS] + [(mode, "documented") for mode in MODES[1:]]


@pytest.fixture(params=ENV_PARAMS, ids=[f"{mode}-{reading}" for mode, reading in ENV_PARAMS])
async def env(request: pytest.FixtureRequest, fake: FakeIntakeQ) -> AsyncIterator[Env]:
    mode, reading = request.param
    play(fake, reading)
    if mode == "in-process":

        def in_process() -> dict[str, Any]:
            return {**FAST, "transport": fake.transport()}

        async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, **in_process()) as partner, fake.client() as web:
            yield Env(mode, fake, partner, web, fake.base_url, in_process)
    else:
        options = {**FAST, "http_stack": mode.removeprefix("loopback-")}
        async with (
            fake.serve() as base_url,
            PartnerClient(PARTNER_KEY, base_url=base_url, **options) as partner,
            httpx.AsyncClient() as web,
        ):
            assert partner.http_stack == options["http_stack"]
            yield Env(mode, fake, partner, web, base_url, lambda: dict(options))


class FaultOnce(httpx.AsyncBaseTransport):
    """Wraps a transport so that the first request matching `method` and `path` meets `faults` on the fake.

    Every other request meets no faults, so the lookups that follow an injected failure go through.
    """

    def __init__(
        self, inner: httpx.AsyncBaseTransport, fake: FakeIntakeQ, method: str, path: str, faults: Faults
    ) -> None:
        self.inner, self.fake, self.method, self.path, self.faults = inner, fake, method, path, faults
        self.used = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hit = not self.used and request.method == self.method and request.url.path == self.path
        if hit:
            self.used = True
            self.fake.faults = self.faults
        try:
            return await self.inner.handle_async_request(request)
        finally:
            if hit:
                self.fake.faults = Faults()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def seed_whose_request_fails_after_applying(n: int) -> int:
    """A fake seed whose n-th API request (1-based) meets its fault *after* the server applied it.

    The fake draws the same random values for every request whatever the fault settings, so probing with
    harmless GETs finds a seed whose plan for request n says "after".
    """
    for seed in range(500):
        probe = FakeIntakeQ(PARTNER_KEY, seed=seed, faults=Faults(p5xx=1.0, statuses_5xx=(500,)))
        async with probe.client(headers={"X-Auth-Key": PARTNER_KEY}) as http:
            for _ in range(n):
                await http.get("/api/partner/masterForms")
        if probe.requests[n - 1].fault_when == "after":
            return seed
    raise AssertionError("no seed found")  # pragma: no cover


def practice_fields(tag: str) -> dict[str, Any]:
    return {
        "practice_name": f"Clinic {tag}",
        "first_name": "Ann",
        "last_name": f"Lee-{tag}",
        "email": f"ann-{tag}@example.com",
    }


async def touch_every_operation(partner: PartnerClient, fake: FakeIntakeQ, tag: str) -> Practice:
    """Drive every operation for one new practice, checking each result against the fake's state.

    Returns the practice, which is deleted at the end (the last operation).
    """
    # --- partner key: practices
    practice = await partner.practices.create(**practice_fields(tag), external_practice_id=f"ext-{tag}", city="Oslo")
    assert fake.practice(f"ext-{tag}").id == practice.id and practice.city == "Oslo"
    updated = await partner.practices.update(f"ext-{tag}", **practice_fields(tag), city="Rome")
    assert updated.id == practice.id and fake.practice(practice.id).city == "Rome"
    assert fake.practice(practice.id).external_id == f"ext-{tag}"
    found = await partner.practices.get(email=f"ann-{tag}@example.com")
    assert found is not None and found.id == practice.id and found.city == "Rome"
    assert practice.id in [p.id for p in await partner.practices.list()]
    assert await partner.practices.api_key(practice.id) == fake.practice_key(practice.id)
    sign_in = await partner.practices.ephemeral_token(f"ext-{tag}")
    assert sign_in.user_id == fake.practice(practice.id).main_practitioner_id and sign_in.token

    # --- partner key: forms
    masters = {form.name: form for form in await partner.forms.master()}
    assert masters.keys() == {form.name for form in fake.master_forms}
    copy = await partner.forms.copy(
        source_master_form_id=masters["Intake Form"].id,
        practice=f"ext-{tag}",
        copy_attached_consent_forms=True,
    )
    assert copy.name == "Intake Form" and copy.type == "Questionnaire"
    in_practice = {form.id for form in await partner.forms.list(practice.id)}
    assert in_practice == {form.id for form in fake.forms(practice.id)} and copy.id in in_practice

    # --- practice key: practitioners
    v1 = partner.practice(practice.id)
    doc = await v1.practitioners.create(
        first_name="Bo", last_name="Ek", email=f"bo-{tag}@example.com", external_practitioner_id=f"doc-{tag}"
    )
    assert doc.external_practitioner_id == f"doc-{tag}" and doc.role_name == "Administrator"
    doc = await v1.practitioners.update(f"doc-{tag}", last_name="Berg")
    assert doc.complete_name == "Bo Berg"
    # Whatever the fake does with fields an update leaves out, none was left out: nothing else changed.
    stored = fake.practitioner(practice.id, doc.id)
    assert (stored.email, stored.role_name, stored.external_id) == (
        f"bo-{tag}@example.com",
        "Administrator",
        f"doc-{tag}",
    )
    await v1.practitioners.disable(doc.id)
    assert doc.id not in [p.id for p in await v1.practitioners.list()]
    assert [p.is_inactive for p in await v1.practitioners.list(include_inactive=True) if p.id == doc.id] == [True]
    await v1.practitioners.enable(f"doc-{tag}")
    assert fake.practitioner(practice.id, doc.id).is_inactive is False

    # --- practice key: assistants
    helper = await v1.assistants.create(
        name="Al", email=f"al-{tag}@example.com", external_assistant_id=f"al-{tag}", practitioner_ids=[f"doc-{tag}"]
    )
    assert helper.practitioner_ids == [doc.id]
    helper = await v1.assistants.update(helper.id, practitioner_ids=[])
    assert helper.practitioner_ids == []
    assert [a.id for a in await v1.assistants.list()] == [helper.id]
    await v1.assistants.delete(helper.id)
    assert fake.assistants(practice.id) == []

    # --- practice key: intakes
    intake = await v1.intakes.create(
        questionnaire_id=copy.id, client_name="Cy", client_email=f"cy-{tag}@example.com", practitioner_id=doc.id
    )
    assert intake.practitioner_id == doc.id and intake.url and len(intake.consent_forms or []) == 2
    form_token = await v1.intakes.create_token(intake.id)
    assert form_token.url == intake.url and not form_token.is_expired()

    # --- practice key: handing over and removing a practitioner
    main = fake.practice(practice.id).main_practitioner_id
    await v1.practitioners.transfer_client_ownership(source=doc.id, destination=main)
    await v1.practitioners.transfer_data(source=f"doc-{tag}", destination=main)
    assert fake.client_data(practice.id, doc.id) == 0 and fake.client_data(practice.id, main) == 1
    await v1.practitioners.delete(doc.id)
    assert [p.id for p in fake.practitioners(practice.id)] == [main]

    # --- partner key: the practice goes
    await partner.practices.delete(practice.id)
    assert all(p.id != practice.id for p in fake.practices)
    partner.forget_practice_key(practice.id)
    return practice


def api_routes(fake: FakeIntakeQ) -> set[tuple[str, str]]:
    """The (method, route template) pairs of the API, from the fake's router."""
    return {(r.method, r.template) for r in fake.app.router.routes if r.template.startswith("/api/")}


@pytest.fixture
def every_operation() -> Callable[[PartnerClient, FakeIntakeQ, str], Any]:
    return touch_every_operation


class Served:
    """The fake on a loopback port, run by its own event loop in a thread, so `main()` can call asyncio.run."""

    def __init__(self, fake: FakeIntakeQ) -> None:
        self.fake = fake
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),), daemon=True)

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        async with self.fake.serve() as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(10), "the fake did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def httpx_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients built with the default stack use httpx's own transports, which respx mocks (aiohttp it cannot)."""
    monkeypatch.setenv("INTAKEQ_HTTP_STACK", "httpx")
