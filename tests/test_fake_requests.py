"""The fake refuses requests the spec does not allow, with a 400 that names the field."""

from __future__ import annotations

import httpx
import pytest
from conftest import PARTNER_KEY

from intakeq_partner.testing import FakeIntakeQ

PARTNER = PARTNER_KEY
BODY = {"PracticeName": "P", "FirstName": "Ann", "LastName": "Lee", "Email": "ann@example.com"}


async def refused(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    message: str = response.json()["Message"]
    return message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**BODY, "PracticeTitle": "x"}, "Unknown field 'PracticeTitle': create_practice does not take it."),
        ({k: v for k, v in BODY.items() if k != "Email"}, "Email is required."),
        ({**BODY, "FirstName": "  "}, "FirstName is required."),
        ({**BODY, "City": 7}, "City must be a string."),
        ({**BODY, "FormsEnabled": "yes"}, "FormsEnabled must be true or false."),
    ],
)
async def test_a_body_that_does_not_fit_the_request_model_names_the_field(
    fake: FakeIntakeQ, http: httpx.AsyncClient, body: dict[str, object], message: str
) -> None:
    assert await refused(await http.post("/api/partner/practice", json=body)) == message
    assert fake.practices == []


async def test_list_fields_and_integers_are_checked_too(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice = fake.add_practice(ExternalPracticeId="e1")
    v1 = {"X-Auth-Key": practice.key}
    assistant = {"Name": "Al", "Email": "al@example.com", "PractitionerIds": "everyone"}
    answer = await http.post("/api/v1/assistants", json=assistant, headers=v1)
    assert await refused(answer) == "PractitionerIds must be a list of strings."
    intake = {"QuestionnaireId": "q", "ClientId": "12"}
    assert await refused(await http.post("/api/v1/intakes/create", json=intake, headers=v1)) == (
        "ClientId must be an integer."
    )


async def test_query_parameters_must_be_the_operations_own(http: httpx.AsyncClient) -> None:
    unknown = await http.get("/api/partner/practice", params={"externalId": "e1"})
    assert await refused(unknown) == "Unknown query parameter 'externalId': list_practices does not take it."
    assert await refused(await http.get("/api/partner/practice", params={"page": "two"})) == "page must be an integer."
    assert (await http.get("/api/partner/practice", params={"page": ""})).status_code == 200  # empty reads as absent


async def test_the_fake_can_be_made_directly_with_wire_names_and_is_checked_the_same_way(fake: FakeIntakeQ) -> None:
    assert fake.add_practice(City="Oslo").city == "Oslo"
    with pytest.raises(Exception, match="Unknown field 'Town'"):
        fake.add_practice(Town="Oslo")
