"""Where IntakeQ's document can be read more than one way, the client must be right under every reading.

Each test here drives the facade against the fake playing one reading (a FakeIntakeQ setting) and judges by
what the fake holds and saw. The rules the document states plainly (which client fields an intake needs)
are checked combination by combination.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from conftest import PARTNER_KEY, practice_fields

from intakeq_partner import InvalidRequestError, NotFoundError, PartnerClient, ServerError
from intakeq_partner._generated import models
from intakeq_partner._generated.models import Assistant, Practice
from intakeq_partner.practice import Assistants
from intakeq_partner.testing import FakeIntakeQ, Faults


@pytest.fixture
def fake() -> FakeIntakeQ:
    return FakeIntakeQ(PARTNER_KEY, seed=9)


@pytest.fixture
async def partner(fake: FakeIntakeQ) -> AsyncIterator[PartnerClient]:
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as client:
        yield client


def v1_writes(fake: FakeIntakeQ, route: str) -> int:
    return sum(n for (method, template), n in fake.stats.calls.items() if template == route and method != "GET")


# ----- 1. creating an intake: the document's rule for naming the client

NAME = {"client_name": "Cy Poe"}
EMAIL = {"client_email": "cy@example.com"}
PHONE = {"client_phone": "5550100"}
EXTERNAL = {"external_client_id": "crm-7"}
ID = {"client_id": 4242}

ALLOWED: dict[str, dict[str, Any]] = {
    "ClientId alone": ID,
    "ClientId with a name": {**ID, **NAME},
    "ClientId with an external ID": {**ID, **EXTERNAL},
    "name and email": {**NAME, **EMAIL},
    "name and phone": {**NAME, **PHONE},
    "name, email and phone": {**NAME, **EMAIL, **PHONE},
    "a new client tagged with an external ID": {**EXTERNAL, **NAME, **EMAIL},
    "external ID, name and phone": {**EXTERNAL, **NAME, **PHONE},
    "everything": {**ID, **EXTERNAL, **NAME, **EMAIL, **PHONE},
}
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "nothing": ({}, "IntakeQ needs ClientName"),
    "an external ID alone": (EXTERNAL, "IntakeQ needs ClientName"),
    "a name alone": (NAME, "IntakeQ needs ClientEmail"),
    "an email alone": (EMAIL, "IntakeQ needs ClientName"),
    "a phone alone": (PHONE, "IntakeQ needs ClientName"),
    "email and phone without a name": ({**EMAIL, **PHONE}, "IntakeQ needs ClientName"),
    "an external ID and a name": ({**EXTERNAL, **NAME}, "IntakeQ needs ClientEmail"),
    "an external ID and an email": ({**EXTERNAL, **EMAIL}, "IntakeQ needs ClientName"),
}


async def intake_setup(partner: PartnerClient) -> str:
    await partner.practices.create(**practice_fields("in"), external_practice_id="ext-in")
    [master] = [f for f in await partner.forms.master() if f.name == "Intake Form"]
    copy = await partner.forms.copy(source_master_form_id=master.id, practice="ext-in")
    return copy.id


@pytest.mark.parametrize("name", list(ALLOWED))
async def test_each_client_combination_the_document_allows_creates_an_intake(
    name: str, fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    questionnaire = await intake_setup(partner)
    intake = await partner.practice("ext-in").intakes.create(questionnaire_id=questionnaire, **ALLOWED[name])
    [stored] = fake.intakes("ext-in")
    assert stored.id == intake.id
    if "client_id" in ALLOWED[name]:
        assert intake.client_id == 4242
    if "external_client_id" in ALLOWED[name]:
        assert stored.client.external_id == "crm-7"


@pytest.mark.parametrize("name", list(REFUSED))
async def test_each_client_combination_the_document_refuses_is_refused_before_sending(
    name: str, fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    questionnaire = await intake_setup(partner)
    fields, message = REFUSED[name]
    with pytest.raises(InvalidRequestError, match=message):
        await partner.practice("ext-in").intakes.create(questionnaire_id=questionnaire, **fields)
    assert v1_writes(fake, "/api/v1/intakes/create") == 0


@pytest.mark.parametrize("name", list(REFUSED))
async def test_the_fake_applies_the_same_rule(name: str, fake: FakeIntakeQ) -> None:
    practice = fake.add_practice()
    form = fake.add_practice_form(practice, "Intake")
    wire = {"client_id": "ClientId", "client_name": "ClientName", "client_email": "ClientEmail"}
    wire |= {"client_phone": "ClientPhone", "external_client_id": "ExternalClientId"}
    body: dict[str, Any] = {"QuestionnaireId": form.id} | {wire[k]: v for k, v in REFUSED[name][0].items()}
    async with fake.client(headers={"X-Auth-Key": practice.key}) as http:
        answer = await http.post("/api/v1/intakes/create", json=body)
    assert answer.status_code == 400 and fake.intakes(practice) == []


@pytest.mark.parametrize("value", [True, "4242", 4242.0, 0, -1, 2**63])
async def test_client_id_must_be_a_positive_int(value: Any, fake: FakeIntakeQ, partner: PartnerClient) -> None:
    with pytest.raises(InvalidRequestError, match="client_id must be"):
        await partner.practice("P").intakes.create(questionnaire_id="q", client_id=value)
    assert fake.requests == []


# ----- 4. the practice list, whether or not it pages


@pytest.mark.parametrize("paging", ["all", "paged", "ignores-page"])
@pytest.mark.parametrize("n", [0, 30, 200, 250])
async def test_list_returns_every_practice_once_under_each_paging(paging: str, n: int) -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=1, list_paging=paging)  # type: ignore[arg-type]
    for i in range(n):
        fake.add_practice(ExternalPracticeId=f"ext-{i}")
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as partner:
        listed = await partner.practices.list()
        streamed = [p.id async for p in partner.practices.iter()]
    assert sorted(p.id for p in listed) == sorted(p.id for p in fake.practices)
    assert len(listed) == n and streamed == [p.id for p in listed]
    pages = [r for r in fake.requests if r.method == "GET"]
    assert len(pages) <= 2 * (n // 100 + 2)  # a page at a time, never one call per practice


async def test_iter_streams_a_page_at_a_time() -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=1, list_paging="paged")
    for i in range(250):
        fake.add_practice(ExternalPracticeId=f"ext-{i}")
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as partner:
        seen = 0
        async for _ in partner.practices.iter():
            seen += 1
            if seen == 150:
                break
    assert [r.raw_path for r in fake.requests] == ["/api/partner/practice"] * 2


async def test_a_lookup_by_external_id_finds_the_practice_under_each_paging() -> None:
    for paging in ("all", "paged", "ignores-page"):
        fake = FakeIntakeQ(PARTNER_KEY, seed=1, list_paging=paging)
        for i in range(150):
            fake.add_practice(ExternalPracticeId=f"ext-{i}", Email=f"p{i}@example.com")
        async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as partner:
            by_ext = await partner.practices.get("ext-149")
            by_email = await partner.practices.get(email="P120@example.com")
            missing = await partner.practices.get("ext-999")
        assert by_ext is not None and by_ext.external_practice_id == "ext-149", paging
        assert by_email is not None and by_email.email == "p120@example.com", paging
        assert missing is None


@pytest.mark.usefixtures("httpx_stack")
async def test_a_lookup_never_returns_another_practice_when_the_server_ignores_the_filter() -> None:
    others = [{"Id": f"P{i}", "ExternalPracticeId": f"other-{i}"} for i in range(100)]
    wanted = {"Id": "PX", "ExternalPracticeId": "mine"}

    def answer(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("page")
        body = {None: others, "1": others, "2": [wanted], "3": []}.get(page, [])
        return httpx.Response(200, json=body)

    with respx.mock(base_url="https://intakeq.test", assert_all_called=False) as router:
        router.get("/api/partner/practice").mock(side_effect=answer)
        async with PartnerClient(PARTNER_KEY, base_url="https://intakeq.test") as partner:
            found = await partner.practices.get("mine")
    assert found is not None and found.id == "PX"


# ----- 2. updates are safe whether IntakeQ merges or replaces


@pytest.fixture(params=["merge", "replace"])
async def either(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FakeIntakeQ, PartnerClient]]:
    fake = FakeIntakeQ(PARTNER_KEY, seed=4, update_semantics=request.param)
    options: dict[str, Any] = {"transport": fake.transport(), "initial_delay": 0.0, "max_delay": 0.0}
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, **options) as client:
        yield fake, client


async def a_full_practice(partner: PartnerClient) -> str:
    await partner.practices.create(
        **practice_fields("u"), external_practice_id="ext-u", external_practitioner_id="owner-u",
        street_address="1 Main St", city="Oslo", state="OS", postal_code="0150", forms_enabled=True,
        booking_enabled=True,
    )  # fmt: skip
    v1 = partner.practice("ext-u")
    await v1.practitioners.create(
        first_name="Bo", last_name="Ek", email="bo@example.com", role_name="Practitioner", external_practitioner_id="bo"
    )
    await v1.assistants.create(
        name="Al Desk", email="al@example.com", role_name="Practitioner", external_assistant_id="al",
        practitioner_ids=["bo"],
    )  # fmt: skip
    return "ext-u"


async def test_a_practice_update_keeps_every_field_it_does_not_change(
    either: tuple[FakeIntakeQ, PartnerClient],
) -> None:
    fake, partner = either
    await a_full_practice(partner)
    before = fake.practice("ext-u").to_wire()
    updated = await partner.practices.update("ext-u", city="Rome")
    after = fake.practice("ext-u").to_wire()
    assert after == {**before, "City": "Rome"} and updated.city == "Rome"
    by_id = await partner.practices.update(updated.id, booking_enabled=False)
    assert fake.practice(updated.id).to_wire() == {**before, "City": "Rome", "BookingEnabled": False}
    assert by_id.external_practice_id == "ext-u"  # found by Id, the external ID was sent back, not cleared


async def test_a_practitioner_update_keeps_every_field_it_does_not_change(
    either: tuple[FakeIntakeQ, PartnerClient],
) -> None:
    fake, partner = either
    await a_full_practice(partner)
    before = fake.practitioner("ext-u", "bo").to_wire()
    await partner.practice("ext-u").practitioners.update(before["Id"], email="bo@new.example.com")
    after = fake.practitioner("ext-u", "bo").to_wire()
    assert after == {**before, "Email": "bo@new.example.com"}
    owner = fake.practice("ext-u").main_practitioner
    await partner.practice("ext-u").practitioners.update("owner-u", last_name="Smith")
    assert (owner.first_name, owner.last_name, owner.role_name, owner.external_id) == (
        "Ann", "Smith", "Administrator", "owner-u",
    )  # fmt: skip


async def test_an_assistant_update_never_widens_its_practitioners(either: tuple[FakeIntakeQ, PartnerClient]) -> None:
    fake, partner = either
    await a_full_practice(partner)
    doctor = fake.practitioner("ext-u", "bo").id
    v1 = partner.practice("ext-u").assistants
    await v1.update("al", name="Al Front")
    await v1.update("al", last_name="Front")
    [assistant] = fake.assistants("ext-u")
    assert assistant.practitioner_ids == [doctor]  # never [] (which would mean every practitioner)
    assert (assistant.name, assistant.email, assistant.role_name, assistant.external_id) == (
        "Al Front", "al@example.com", "Practitioner", "al",
    )  # fmt: skip
    assert assistant.last_name == "Front"
    await v1.update("al", email="al@new.example.com")
    assert assistant.last_name == "Front"  # a field only the update body has survives the next update too
    await v1.update("al", practitioner_ids=[])
    assert assistant.practitioner_ids == []  # widening happens only when asked for


async def test_concurrent_updates_of_one_object_do_not_undo_each_other(
    either: tuple[FakeIntakeQ, PartnerClient],
) -> None:
    fake, partner = either
    await a_full_practice(partner)
    v1 = partner.practice("ext-u").practitioners
    await asyncio.gather(
        v1.update("bo", first_name="Bea"),
        v1.update("bo", last_name="Berg"),
        v1.update("bo", email="bea@example.com"),
    )
    bo = fake.practitioner("ext-u", "bo")
    assert (bo.first_name, bo.last_name, bo.email) == ("Bea", "Berg", "bea@example.com")


async def test_an_update_whose_read_fails_sends_nothing(either: tuple[FakeIntakeQ, PartnerClient]) -> None:
    fake, partner = either
    await a_full_practice(partner)
    fake.reset_stats()
    fake.faults = Faults(p5xx=1.0, statuses_5xx=(500,))
    with pytest.raises(ServerError):
        await partner.practice("ext-u").assistants.update("al", name="X")
    with pytest.raises(ServerError):
        await partner.practices.update("ext-u", city="X")
    assert {r.method for r in fake.requests} == {"GET"}
    fake.faults = Faults()
    with pytest.raises(NotFoundError, match="nothing was sent"):
        await partner.practice("ext-u").practitioners.update("nobody", first_name="X")
    assert {r.method for r in fake.requests} == {"GET"}


async def test_an_assistant_whose_practitioners_are_not_reported_is_not_updated_blindly(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    unreported = Assistant(id="a1", name="Al", email="al@example.com")
    with pytest.raises(InvalidRequestError, match="PractitionerIds"):
        await partner.practice("P").assistants.update("a1", name="Al B", current=unreported)
    assert fake.requests == []


async def test_an_update_that_cannot_be_completed_is_refused_before_sending(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    nameless = Practice(id="P1", first_name="A", last_name="B", email="a@example.com")
    with pytest.raises(InvalidRequestError, match="PracticeName"):
        await partner.practices.update("P1", city="Oslo", current=nameless)
    assert fake.requests == []


# ----- 5. only documented operations, and a way to call the rest


async def test_disable_assistant_is_neither_a_method_nor_an_endpoint_of_the_fake(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    assert not hasattr(Assistants, "disable")
    practice = fake.add_practice()
    async with fake.client(headers={"X-Auth-Key": practice.key}) as http:
        assert (await http.post("/api/v1/assistants/a1/disable")).status_code == 404


async def test_request_reaches_an_endpoint_with_the_right_key_and_decodes_json(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    await partner.practices.create(**practice_fields("r"), external_practice_id="ext-r")
    found = await partner.request("GET", "/api/partner/practice", params={"externalPracticeId": "ext-r", "id": None})
    assert [p["ExternalPracticeId"] for p in found] == ["ext-r"]
    made = await partner.practice("ext-r").request(
        "post", "/api/v1/practitioners", json={"FirstName": "Bo", "LastName": "Ek", "Email": "bo@example.com"}
    )
    assert made["CompleteName"] == "Bo Ek" and fake.practitioner("ext-r", made["Id"]).email == "bo@example.com"
    gone = await partner.practice("ext-r").request("DELETE", f"/api/v1/practitioners/{made['Id']}")
    assert gone is None  # an empty body
    keys = [(r.method, r.route, r.auth) for r in fake.requests]
    assert ("GET", "/api/partner/practice", "partner") in keys
    assert ("POST", "/api/v1/practitioners", f"practice:{fake.practice('ext-r').id}") in keys


async def test_request_errors_and_retries_are_those_of_typed_calls(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    with pytest.raises(NotFoundError):
        await partner.request("DELETE", "/api/partner/practice/nope")
    fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))
    options: dict[str, Any] = {"transport": fake.transport(), "initial_delay": 0.0, "max_delay": 0.0}
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, max_retries=2, **options) as quick:
        fake.reset_stats()
        with pytest.raises(ServerError):
            await quick.request("GET", "/api/partner/masterForms")
        assert len(fake.requests) == 3  # a GET is retried
        fake.reset_stats()
        with pytest.raises(ServerError):
            await quick.request("POST", "/api/partner/practice/copyForm", json={})
        assert len(fake.requests) == 1  # a POST that may have arrived is not
        fake.reset_stats()
        with pytest.raises(ServerError):
            await quick.request("POST", "/api/partner/practice/copyForm", json={}, idempotent=True)
        assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("client", "method", "path", "message"),
    [
        ("partner", "GET", "/api/v1/practitioners", "only be sent under /api/partner/"),
        ("practice", "GET", "/api/partner/practice", "only be sent under /api/v1/"),
        ("practice", "GET", "/api/v1/../partner/practice", r"no empty, '\.' or '\.\.' segments"),
        ("practice", "GET", "/api/v1/%2E%2e/partner/practice", r"'\.\.' segments"),
        ("partner", "GET", "/api/partner//practice", "no empty"),
        ("partner", "GET", "/api/partner/practice?id=1", "no query or fragment"),
        ("partner", "GET", "/api/partner/practice#x", "no query or fragment"),
        ("partner", "GET", "/api/partner/prac tice", "no whitespace"),
        ("partner", "GET", "/api/partner/practice\\..\\x", "backslashes"),
        ("partner", "GET", "/api/partner/pr\u00e4ctice", "ASCII"),
        ("partner", "GET", "/api/partner/", "must start with it"),
        ("partner", "GET", "https://evil.example/api/partner/x", "must start with it"),
        ("partner", "TRACE", "/api/partner/practice", "method must be one of"),
        ("partner", "GET", 7, "path must be a string"),
    ],
)
async def test_request_refuses_what_could_carry_a_key_where_it_does_not_belong(
    fake: FakeIntakeQ, partner: PartnerClient, client: str, method: str, path: Any, message: str
) -> None:
    target = partner if client == "partner" else partner.practice("P1")
    with pytest.raises(InvalidRequestError, match=message):
        await target.request(method, path)
    assert fake.requests == []


async def test_request_refuses_bad_params_before_sending(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    with pytest.raises(InvalidRequestError, match="params"):
        await partner.request("GET", "/api/partner/practice", params={"page": [1, 2]})  # type: ignore[dict-item]
    assert fake.requests == []


async def test_updates_through_a_with_options_view_wait_for_the_client_they_came_from() -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=4, update_semantics="replace")
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as partner:
        await a_full_practice(partner)
        patient = partner.with_options(max_retries=5)
        await asyncio.gather(
            partner.practice("ext-u").practitioners.update("bo", first_name="Bea"),
            patient.practice("ext-u").practitioners.update("bo", last_name="Berg"),
        )
    bo = fake.practitioner("ext-u", "bo")
    assert (bo.first_name, bo.last_name) == ("Bea", "Berg")


def test_the_fake_server_command_takes_every_reading() -> None:
    from intakeq_partner.testing.__main__ import parse_args

    args = parse_args(["--timestamps", "mixed", "--list-paging", "ignores-page", "--update-semantics", "replace"])
    assert (args.timestamps, args.list_paging, args.update_semantics) == ("mixed", "ignores-page", "replace")
    defaults = parse_args([])
    assert (defaults.timestamps, defaults.list_paging, defaults.update_semantics) == ("documented", "all", "merge")
    with pytest.raises(ValueError, match="update_semantics must be one of merge, replace"):
        FakeIntakeQ(update_semantics="overwrite")  # type: ignore[arg-type]


@pytest.mark.parametrize("paging", ["all", "paged", "ignores-page"])
async def test_a_practice_with_more_than_a_page_of_people_is_listed_and_searched_whole(paging: str) -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=2, list_paging=paging)  # type: ignore[arg-type]
    practice = fake.add_practice(ExternalPracticeId="big")
    for i in range(130):
        fake.state.create_practitioner(
            practice,
            models.PractitionerCreate(f"F{i}", f"L{i}", f"p{i}@example.com", external_practitioner_id=f"dr-{i}"),
        )
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as partner:
        v1 = partner.practice("big")
        for i in range(105):
            await v1.assistants.create(name=f"A{i}", email=f"a{i}@example.com", external_assistant_id=f"as-{i}")
        fake.reset_stats()
        people = await v1.practitioners.list()
        helpers = await v1.assistants.list()
        last = await v1.practitioners.get("dr-129")
        second_page = await v1.practitioners.list(page=2)
        updated = await v1.assistants.update("as-104", name="Z")
    assert len(people) == 131 and len({p.id for p in people}) == 131  # the main user and 130 more
    assert len(helpers) == 105 and last is not None and last.external_practitioner_id == "dr-129"
    assert updated.name == "Z" and fake.assistants("big")[-1].name == "Z"
    assert len(second_page) == (131 if paging == "ignores-page" else 31)
    lists = [r for r in fake.requests if r.method == "GET" and r.route != "/api/partner/practice/{practiceId}/key"]
    assert len(lists) <= 2 * 4 + 1 + 2  # two pages (or one and a repeat) per walk, never one call per person


async def test_a_practice_carries_its_main_practitioners_external_id(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    made = await partner.practices.create(
        **practice_fields("m"), external_practice_id="ext-m", external_practitioner_id="own"
    )
    found = await partner.practices.get("ext-m")
    assert made.external_practitioner_id == "own" and found is not None and found.external_practitioner_id == "own"
