"""Creates with an external ID are idempotent: concurrently through one client (one request), across several
clients (a 409 settled by a look-up), after an unreadable answer (looked up before failing), and a conflicting
create gets ConflictError carrying what IntakeQ holds. Every test runs in-process and over both HTTP stacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import FAST, MODES, PARTNER_KEY, FaultOnce, stack_transport
from rawservers import by_path, respond, serve

from intakeq_partner import ConflictError, PartnerClient
from intakeq_partner.testing import FakeIntakeQ, Faults

PATHS = {
    "practice": "/api/partner/practice",
    "practitioner": "/api/v1/practitioners",
    "assistant": "/api/v1/assistants",
}
KINDS = list(PATHS)


@dataclass
class Reach:
    """The fake, reached one way (in-process or over a loopback socket with one stack)."""

    fake: FakeIntakeQ
    base_url: str
    mode: str

    def transport(self) -> httpx.AsyncBaseTransport:
        return (
            self.fake.transport() if self.mode == "in-process" else stack_transport(self.mode.removeprefix("loopback-"))
        )

    def client(self, **options: Any) -> PartnerClient:
        return PartnerClient(PARTNER_KEY, base_url=self.base_url, **{**FAST, "transport": self.transport(), **options})


@pytest.fixture(params=MODES)
async def reach(request: pytest.FixtureRequest) -> AsyncIterator[Reach]:
    fake = FakeIntakeQ(PARTNER_KEY, seed=17)
    if request.param == "in-process":
        yield Reach(fake, fake.base_url, request.param)
    else:
        async with fake.serve() as base_url:
            yield Reach(fake, base_url, request.param)


def practice_args(name: str = "Clinic", email: str = "ann@example.com") -> dict[str, Any]:
    return {"practice_name": name, "first_name": "Ann", "last_name": "Lee", "email": email,
            "external_practice_id": "ext-1", "city": "Oslo", "forms_enabled": True}  # fmt: skip


async def make(partner: PartnerClient, kind: str, practice_id: str, **changes: Any) -> Any:
    """One create of `kind` with external ID "ext-1" (practitioners and assistants in `practice_id`)."""
    if kind == "practice":
        return await partner.practices.create(**{**practice_args(), **changes})
    v1 = partner.practice(practice_id)
    args: dict[str, Any]
    if kind == "practitioner":
        args = {"first_name": "Bo", "last_name": "Ek", "email": "bo@example.com", "external_practitioner_id": "ext-1"}
        return await v1.practitioners.create(**{**args, **changes})
    args = {
        "name": "Al", "email": "al@example.com", "external_assistant_id": "ext-1", "practitioner_ids": ["main-ext"]
    }  # fmt: skip
    return await v1.assistants.create(**{**args, **changes})


def stored(fake: FakeIntakeQ, kind: str, practice_id: str) -> list[Any]:
    if kind == "practice":
        return [p for p in fake.practices if p.external_id == "ext-1"]
    group = fake.practitioners(practice_id) if kind == "practitioner" else fake.assistants(practice_id)
    return [o for o in group if o.external_id == "ext-1"]


async def home(partner: PartnerClient) -> str:
    """A practice for the v1 creates, whose main user has the external ID "main-ext"."""
    created = await partner.practices.create(
        practice_name="Home", first_name="Mo", last_name="Ra", email="mo@example.com",
        external_practice_id="home", external_practitioner_id="main-ext",
    )  # fmt: skip
    return created.id


@pytest.mark.parametrize("kind", KINDS)
async def test_the_same_create_concurrently_through_one_client_sends_one_request(reach: Reach, kind: str) -> None:
    async with reach.client() as partner:
        practice_id = await home(partner)
        posts_before = reach.fake.stats.calls[("POST", PATHS[kind])]
        results = await asyncio.gather(*(make(partner, kind, practice_id) for _ in range(12)))
    assert len({r.id for r in results}) == 1
    assert [o.id for o in stored(reach.fake, kind, practice_id)] == [results[0].id]
    assert reach.fake.stats.calls[("POST", PATHS[kind])] - posts_before == 1  # one flight, the rest waited


@pytest.mark.parametrize("kind", KINDS)
async def test_the_same_create_from_several_clients_at_once_makes_one_object(reach: Reach, kind: str) -> None:
    async with reach.client() as first:
        practice_id = await home(first)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(reach.client()) for _ in range(4)]
        results = await asyncio.gather(*(make(c, kind, practice_id) for c in clients for _ in range(3)))
    assert len({r.id for r in results}) == 1
    assert len(stored(reach.fake, kind, practice_id)) == 1
    assert 1 <= reach.fake.stats.calls[("POST", PATHS[kind])] - (1 if kind == "practice" else 0) <= 4


@pytest.mark.parametrize("kind", KINDS)
async def test_a_create_with_other_details_gets_a_conflict_carrying_what_intakeq_holds(reach: Reach, kind: str) -> None:
    other = {"practice": {"practice_name": "Another clinic"}, "practitioner": {"last_name": "Oh"},
             "assistant": {"name": "Alma"}}[kind]  # fmt: skip
    async with reach.client() as partner, reach.client() as elsewhere:
        practice_id = await home(partner)
        first = await make(partner, kind, practice_id)
        # Again, now with other details: from this client (no flight in progress) and from another one.
        for client in (partner, elsewhere):
            with pytest.raises(ConflictError) as caught:
                await make(client, kind, practice_id, **other)
            assert caught.value.existing == first
            assert (next(iter(other)) in str(caught.value)) and "existing" in str(caught.value)
        # The same details again, spelled as IntakeQ might store them: no conflict.
        respelled = {"email": "ANN@example.com "} if kind == "practice" else {"email": " " + first.email.upper()}
        assert (await make(partner, kind, practice_id, **respelled)).id == first.id
        # Both at once through one client: one wins, the other learns what IntakeQ holds.
        if kind == "practice":
            outcomes = await asyncio.gather(
                make(partner, kind, practice_id, external_practice_id="ext-2"),
                make(partner, kind, practice_id, external_practice_id="ext-2", **other),
                return_exceptions=True,
            )
            [won] = [o for o in outcomes if not isinstance(o, BaseException)]
            [lost] = [o for o in outcomes if isinstance(o, ConflictError)]
            assert lost.existing == won
    assert len(stored(reach.fake, kind, practice_id)) == 1


async def test_assistants_naming_practitioners_by_external_id_match_the_ids_intakeq_answers(reach: Reach) -> None:
    async with reach.client() as partner:
        practice_id = await home(partner)
        first = await make(partner, "assistant", practice_id)  # practitioner_ids=["main-ext"]
        assert first.practitioner_ids != ["main-ext"]  # IntakeQ answers with the Id
        assert (await make(partner, "assistant", practice_id)).id == first.id


async def test_a_practice_without_a_field_this_create_sets_is_a_conflict_not_ours(reach: Reach) -> None:
    # IntakeQ's practice answer always carries City, StreetAddress, ...: null there means the practice has none,
    # so one made elsewhere without the city we ask for is someone else's, not ours.
    async with reach.client() as partner:
        args = {**practice_args(), "city": None, "forms_enabled": None}
        theirs = await partner.practices.create(**args)
        for field, value in (("city", "Oslo"), ("street_address", "Main St 1"), ("booking_enabled", True)):
            with pytest.raises(ConflictError) as caught:
                await partner.practices.create(**{**args, field: value})
            assert caught.value.existing == theirs and field in str(caught.value)
        # A blank text asked for is what IntakeQ holds as none; a field the answer does not carry is not compared.
        assert (await partner.practices.create(**{**args, "city": " "})).id == theirs.id
        assert (await partner.practices.create(**{**args, "external_practitioner_id": "x"})).id == theirs.id
    assert len(stored(reach.fake, "practice", "")) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unreadable_answer_to_a_create_is_settled_by_a_look_up(reach: Reach, kind: str) -> None:
    async with reach.client() as setup:
        practice_id = await home(setup)
    broken = FaultOnce(reach.transport(), reach.fake, "POST", PATHS[kind], Faults(p_malformed=1.0))
    async with PartnerClient(PARTNER_KEY, base_url=reach.base_url, transport=broken, **FAST) as partner:
        created = await make(partner, kind, practice_id)
    [fault] = [(r.fault, r.fault_when) for r in reach.fake.requests if r.fault]
    assert [o.id for o in stored(reach.fake, kind, practice_id)] == [created.id]
    # Applied, then answered unreadably: found, never posted again. Not applied: found missing, posted again.
    posts = reach.fake.stats.calls[("POST", PATHS[kind])] - (1 if kind == "practice" else 0)
    assert posts == (1 if fault == ("malformed", "after") else 2)


@pytest.mark.parametrize("stack", ["httpx", "aiohttp"])
@pytest.mark.parametrize("answer", [b"<html><body>Page Not Found</body></html>", b'{"Id": "p-9", "PracticeNa'])
async def test_an_unreadable_answer_then_someone_elses_practice_is_a_conflict_not_a_success(
    stack: str, answer: bytes
) -> None:
    """The look-up after an unreadable answer finds a practice with this external ID but other details: it is
    not ours to return (today's look-up returned it as if created)."""
    theirs = {"Id": "p-1", "PracticeName": "Not yours", "FirstName": "Ann", "LastName": "Lee",
              "Email": "ann@example.com", "ExternalPracticeId": "ext-1"}  # fmt: skip
    routes = {
        ("POST", PATHS["practice"]): respond(200, answer, headers={"Content-Type": "text/html"}),
        ("GET", PATHS["practice"]): respond(200, [theirs]),
    }
    async with serve(by_path(routes)) as server:
        async with PartnerClient(PARTNER_KEY, base_url=server.base_url, **{**FAST, "http_stack": stack}) as partner:
            with pytest.raises(ConflictError) as caught:
                await partner.practices.create(**practice_args())
    assert caught.value.existing is not None and caught.value.existing.id == "p-1"
    assert [r.method for r in server.requests] == ["POST", "GET"]


@pytest.mark.parametrize("stack", ["httpx", "aiohttp"])
async def test_a_409_that_is_not_about_the_external_id_stands(stack: str) -> None:
    """A 409 after which no object holds the external ID (an email in use, say) is IntakeQ's answer as it is."""
    routes = {
        ("POST", PATHS["practice"]): respond(409, {"Message": "The email is already in use."}),
        ("GET", PATHS["practice"]): respond(200, []),
    }
    async with serve(by_path(routes)) as server:
        async with PartnerClient(PARTNER_KEY, base_url=server.base_url, **{**FAST, "http_stack": stack}) as partner:
            with pytest.raises(ConflictError, match="email is already in use") as caught:
                await partner.practices.create(**practice_args())
    assert caught.value.existing is None
    assert [r.method for r in server.requests] == ["POST", "GET"]


CHILD = """
import asyncio, json, sys
from intakeq_partner import PartnerClient

async def main(url, key, stack):
    async with PartnerClient(key, base_url=url, http_stack=stack, initial_delay=0.0, max_delay=0.0) as partner:
        made = await asyncio.gather(*(
            partner.practices.create(practice_name=f"Clinic {i}", first_name="Ann", last_name="Lee",
                                     email=f"ann{i}@example.com", external_practice_id=f"proc-{i}")
            for i in range(10)
        ))
    print(json.dumps({p.external_practice_id: p.id for p in made}))

asyncio.run(main(*sys.argv[1:]))
"""


async def test_the_same_creates_from_several_processes_make_one_object_each() -> None:
    """Four processes (two on each HTTP stack) create the same ten practices at once: ten practices, and every
    process gets the same Id for each (the losers' 409s settled by a look-up, not handed to them)."""
    fake = FakeIntakeQ(PARTNER_KEY, seed=4)
    async with fake.serve() as base_url:
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CHILD,
                base_url,
                PARTNER_KEY,
                stack,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for stack in ("httpx", "aiohttp", "httpx", "aiohttp")
        ]
        outputs = [await child.communicate() for child in children]
    assert [child.returncode for child in children] == [0] * 4, [err.decode()[-2000:] for _, err in outputs]
    seen = [json.loads(out) for out, _ in outputs]
    assert all(ids == seen[0] for ids in seen) and len(seen[0]) == 10
    assert sorted(p.id for p in fake.practices) == sorted(seen[0].values())
