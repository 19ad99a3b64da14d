"""Where IntakeQ's document can be read more than one way, the client must be right under every reading.

Each test here drives the facade against the fake playing one reading (a FakeIntakeQ setting) and judges by
what the fake holds and saw. The rules the document states plainly (which client fields an intake needs)
are checked combination by combination.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from conftest import PARTNER_KEY, practice_fields

from intakeq_partner import InvalidRequestError, PartnerClient
from intakeq_partner.testing import FakeIntakeQ


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

ALLOWED = {
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
REFUSED = {
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
    copy = await partner.forms.copy(source_master_form_id=master.id, destination_practice="ext-in")
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
        fake = FakeIntakeQ(PARTNER_KEY, seed=1, list_paging=paging)  # type: ignore[arg-type]
        for i in range(150):
            fake.add_practice(ExternalPracticeId=f"ext-{i}", Email=f"p{i}@example.com")
        async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as partner:
            by_ext = await partner.practices.get(external_practice_id="ext-149")
            by_email = await partner.practices.get(email="P120@example.com")
            missing = await partner.practices.get(external_practice_id="ext-999")
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
            found = await partner.practices.get(external_practice_id="mine")
    assert found is not None and found.id == "PX"
