"""Behaviour of the fake IntakeQ server, driven with plain httpx, in-process and over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import PARTNER_KEY

from intakeq_partner.testing import FakeIntakeQ, Faults

PARTNER = PARTNER_KEY
ODD = "a/b?c d"  # an external ID that needs percent-encoding and contains a slash
ODD_Q = quote(ODD, safe="")


def enc(ref: str) -> str:
    return quote(ref, safe="")


def practice_body(n: int = 1, **extra: Any) -> dict[str, Any]:
    body = {"PracticeName": f"Practice {n}", "FirstName": "Ann", "LastName": f"Lee{n}", "Email": f"ann{n}@example.com"}
    body.update(extra)
    return body


async def new_practice(http: httpx.AsyncClient, n: int = 1, **extra: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Create a practice; return it and the headers of its practice key."""
    resp = await http.post("/api/partner/practice", json=practice_body(n, **extra))
    assert resp.status_code == 200, resp.text
    practice = resp.json()
    key = (await http.get(f"/api/partner/practice/{enc(practice['Id'])}/key")).json()["ApiKey"]
    return practice, {"X-Auth-Key": key}


# ----- practices


async def test_create_practice_shape_and_main_practitioner(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http, ExternalPracticeId="ext-1", ExternalPractitionerId="doc-1", City="Oslo")
    assert len(practice["Id"]) == 8 and practice["Id"] == practice["Id"].upper()
    int(practice["Id"], 16)
    assert practice["FormsEnabled"] is True and practice["BookingEnabled"] is False
    assert practice["City"] == "Oslo" and practice["ExternalPracticeId"] == "ext-1"
    datetime.strptime(practice["DateCreated"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert len(v1["X-Auth-Key"]) == 32

    [main] = (await http.get("/api/v1/practitioners", headers=v1)).json()
    assert main["RoleName"] == "Administrator" and main["ExternalPractitionerId"] == "doc-1"
    assert main["CompleteName"] == "Ann Lee1" and main["Email"] == "ann1@example.com" and main["IsInactive"] is False
    assert len(main["Id"]) == 25 and main["Id"] == main["Id"].lower()

    for missing in ("PracticeName", "FirstName", "LastName", "Email"):
        body = practice_body(2)
        del body[missing]
        assert (await http.post("/api/partner/practice", json=body)).status_code == 400
    bad = await http.post("/api/partner/practice", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "Message" in bad.json()
    assert len(fake.practices) == 1


@pytest.mark.parametrize("read_timeout", [None, 5.0])
async def test_in_process_other_tasks_run_while_a_request_is_out(read_timeout: float | None) -> None:
    """As over a socket; inline, on Python 3.12 and later a request was answered before any other task ran."""
    fake = FakeIntakeQ(PARTNER_KEY)
    order: list[str] = []

    async def request(http: httpx.AsyncClient) -> None:
        order.append("sent")
        await http.get("/api/partner/masterForms", headers={"X-Auth-Key": PARTNER_KEY})
        order.append("answered")

    async def other() -> None:
        order.append("other task")

    async with fake.client(timeout=read_timeout) as http:
        await asyncio.gather(request(http), other())
    assert order == ["sent", "other task", "answered"]


async def test_update_practice_by_id_or_external_id(http: httpx.AsyncClient) -> None:
    first, _ = await new_practice(http, 1, ExternalPracticeId="one")
    await new_practice(http, 2, ExternalPracticeId="two")
    names = {k: first[k] for k in ("PracticeName", "FirstName", "LastName", "Email")}
    resp = await http.put("/api/partner/practice", json={"ExternalPracticeId": "one", "City": "Rome", **names})
    assert resp.status_code == 200 and resp.json()["City"] == "Rome" and resp.json()["PracticeName"] == "Practice 1"
    resp = await http.put("/api/partner/practice", json={"Id": first["Id"], "ExternalPracticeId": "uno", **names})
    assert resp.json()["ExternalPracticeId"] == "uno"
    assert (
        await http.put("/api/partner/practice", json={"Id": first["Id"], "ExternalPracticeId": "two", **names})
    ).status_code == 409
    assert (await http.put("/api/partner/practice", json={"City": "X", **names})).status_code == 400
    assert (await http.put("/api/partner/practice", json={"Id": "FFFFFFFF", **names})).status_code == 404
    assert (await http.put("/api/partner/practice", json={"ExternalPracticeId": "nope", **names})).status_code == 404
    missing = await http.put("/api/partner/practice", json={"Id": first["Id"], "City": "X"})
    assert missing.status_code == 400 and missing.json()["Message"] == "PracticeName is required."


async def test_list_practices_filters_and_paging() -> None:
    fake = FakeIntakeQ(PARTNER, seed=1, page_size=2)
    async with fake.client(headers={"X-Auth-Key": PARTNER}) as http:
        created = [(await new_practice(http, n, ExternalPracticeId=f"e{n}"))[0]["Id"] for n in range(5)]
        everything = (await http.get("/api/partner/practice")).json()
        assert [p["Id"] for p in everything] == created
        pages = [
            [p["Id"] for p in (await http.get("/api/partner/practice", params={"page": n})).json()]
            for n in (1, 2, 3, 4)
        ]
        assert pages == [created[0:2], created[2:4], created[4:5], []]
        assert [
            p["Id"] for p in (await http.get("/api/partner/practice", params={"email": "ANN3@example.com"})).json()
        ] == [created[3]]
        assert [
            p["Id"] for p in (await http.get("/api/partner/practice", params={"externalPracticeId": "e1"})).json()
        ] == [created[1]]
        assert (await http.get("/api/partner/practice", params={"id": created[2]})).json()[0]["Id"] == created[2]
        assert (await http.get("/api/partner/practice", params={"id": "00000000"})).json() == []
        assert (await http.get("/api/partner/practice", params={"page": "zero"})).status_code == 400


async def test_delete_practice_kills_its_key(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http, ExternalPracticeId=ODD)
    assert (await http.get("/api/v1/practitioners", headers=v1)).status_code == 200
    resp = await http.delete(f"/api/partner/practice/{ODD_Q}")
    assert resp.status_code == 200 and resp.content == b""
    assert (await http.get("/api/v1/practitioners", headers=v1)).status_code == 401
    assert (await http.delete(f"/api/partner/practice/{practice['Id']}")).status_code == 404
    assert fake.practices == []


# ----- auth


async def test_auth_isolation(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    a, key_a = await new_practice(http, 1)
    b, key_b = await new_practice(http, 2)
    doc = {"FirstName": "Bo", "LastName": "Ek", "Email": "bo@example.com"}

    assert (await http.get("/api/v1/practitioners")).status_code == 401  # partner key on v1
    assert (await http.post("/api/v1/practitioners", json=doc)).status_code == 401
    assert (await http.get("/api/partner/practice", headers=key_a)).status_code == 401  # practice key on partner
    assert (await http.get("/api/partner/masterForms", headers={"X-Auth-Key": "wrong"})).status_code == 401
    async with fake.client() as anonymous:
        resp = await anonymous.get("/api/partner/practice")
        assert resp.status_code == 401 and resp.json()["Message"]
    assert len(fake.practitioners(a["Id"])) == 1

    assert (await http.post("/api/v1/practitioners", json=doc, headers=key_a)).status_code == 200
    assert len((await http.get("/api/v1/practitioners", headers=key_a)).json()) == 2
    assert len((await http.get("/api/v1/practitioners", headers=key_b)).json()) == 1
    a_main = fake.practice(a["Id"]).main_practitioner_id
    assert (await http.post(f"/api/v1/practitioners/{a_main}/disable", headers=key_b)).status_code == 404

    auths = {r.auth for r in fake.requests}
    assert {"partner", f"practice:{a['Id']}", f"practice:{b['Id']}", "invalid", "none"} <= auths
    logged = repr(fake.requests)
    for secret in (PARTNER, key_a["X-Auth-Key"], key_b["X-Auth-Key"]):
        assert secret not in logged


async def test_rotated_practice_key(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, old = await new_practice(http)
    assert fake.practice_key(practice["Id"]) == old["X-Auth-Key"]
    new = fake.rotate_practice_key(practice["Id"])
    assert (await http.get("/api/v1/practitioners", headers=old)).status_code == 401
    assert (await http.get("/api/v1/practitioners", headers={"X-Auth-Key": new})).status_code == 200
    fetched = (await http.get(f"/api/partner/practice/{practice['Id']}/key")).json()["ApiKey"]
    assert fetched == new


# ----- practitioners and assistants


async def test_practitioners_crud_with_external_ids(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http)
    body = {"FirstName": "Bo", "LastName": "Ek", "Email": "bo@example.com", "ExternalPractitionerId": ODD}
    created = (await http.post("/api/v1/practitioners", json=body, headers=v1)).json()
    assert created["RoleName"] == "Administrator"
    assert (await http.post("/api/v1/practitioners", json=body, headers=v1)).status_code == 409
    bad_role = {**body, "ExternalPractitionerId": "x", "RoleName": "Janitor"}
    assert (await http.post("/api/v1/practitioners", json=bad_role, headers=v1)).status_code == 400
    fake.add_role("Janitor")
    assert (await http.post("/api/v1/practitioners", json=bad_role, headers=v1)).json()["RoleName"] == "Janitor"

    resp = await http.put("/api/v1/practitioners", json={"ExternalPractitionerId": ODD, "LastName": "Berg"}, headers=v1)
    assert resp.json()["CompleteName"] == "Bo Berg" and resp.json()["Id"] == created["Id"]
    assert (await http.put("/api/v1/practitioners", json={"LastName": "X"}, headers=v1)).status_code == 400

    assert (await http.post(f"/api/v1/practitioners/{ODD_Q}/disable", headers=v1)).status_code == 200
    listed = (await http.get("/api/v1/practitioners", headers=v1)).json()
    assert created["Id"] not in [p["Id"] for p in listed]
    listed = (await http.get("/api/v1/practitioners", params={"includeInactive": "true"}, headers=v1)).json()
    assert [p["IsInactive"] for p in listed if p["Id"] == created["Id"]] == [True]
    assert (await http.post(f"/api/v1/practitioners/{ODD_Q}/enable", headers=v1)).status_code == 200
    assert fake.practitioner(practice["Id"], created["Id"]).is_inactive is False

    assert (await http.delete(f"/api/v1/practitioners/{ODD_Q}", headers=v1)).status_code == 200
    assert (await http.delete(f"/api/v1/practitioners/{ODD_Q}", headers=v1)).status_code == 404
    record = fake.requests[-2]
    assert record.raw_path == f"/api/v1/practitioners/{ODD_Q}"
    assert record.route == "/api/v1/practitioners/{practitionerId}" and record.status == 200


async def test_delete_with_client_data_refused_until_transferred(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http)
    main = fake.practice(practice["Id"]).main_practitioner_id
    body = {"FirstName": "Bo", "LastName": "Ek", "Email": "bo@example.com", "ExternalPractitionerId": ODD}
    leaving = (await http.post("/api/v1/practitioners", json=body, headers=v1)).json()["Id"]
    fake.add_client_data(practice["Id"], ODD, 3, owned_clients=2)

    resp = await http.delete(f"/api/v1/practitioners/{leaving}", headers=v1)
    assert resp.status_code == 409 and resp.json()["Message"]
    # Ownership alone leaves the historical data behind: still refused.
    assert (
        await http.post(f"/api/v1/practitioners/{ODD_Q}/transferClientOwnership/{main}", headers=v1)
    ).status_code == 200
    assert fake.practitioner(practice["Id"], main).owned_clients == 2
    assert (await http.delete(f"/api/v1/practitioners/{leaving}", headers=v1)).status_code == 409
    assert (await http.post(f"/api/v1/practitioners/{ODD_Q}/transferData/{main}", headers=v1)).status_code == 200
    assert fake.client_data(practice["Id"], main) == 3 and fake.client_data(practice["Id"], leaving) == 0
    assert (await http.delete(f"/api/v1/practitioners/{ODD_Q}", headers=v1)).status_code == 200


async def test_assistants(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http, ExternalPractitionerId="main-doc")
    main = fake.practice(practice["Id"]).main_practitioner_id
    body = {"Name": "Al Assist", "Email": "al@example.com", "ExternalAssistantId": ODD, "PractitionerIds": ["main-doc"]}
    created = (await http.post("/api/v1/assistants", json=body, headers=v1)).json()
    assert created["PractitionerIds"] == [main] and created["RoleName"] == "Administrator"
    assert created["IsInactive"] is False and created["DateCreated"].endswith("Z")
    assert (await http.post("/api/v1/assistants", json=body, headers=v1)).status_code == 409
    unknown = {**body, "ExternalAssistantId": "z", "PractitionerIds": ["nobody"]}
    assert (await http.post("/api/v1/assistants", json=unknown, headers=v1)).status_code == 400
    assert (await http.post("/api/v1/assistants", json={"Name": "X"}, headers=v1)).status_code == 400

    resp = await http.put("/api/v1/assistants", json={"ExternalAssistantId": ODD, "PractitionerIds": []}, headers=v1)
    assert resp.json()["PractitionerIds"] == []
    # "Disable Assistant" is not an operation (the document only names it in its contents): no such endpoint.
    assert (await http.post(f"/api/v1/assistants/{ODD_Q}/disable", headers=v1)).status_code == 404
    assert (await http.delete(f"/api/v1/assistants/{ODD_Q}", headers=v1)).status_code == 200
    assert fake.assistants(practice["Id"]) == []


# ----- forms and intakes


async def test_copy_form_with_and_without_consent_forms(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http, ExternalPracticeId=ODD)
    masters = {f["Name"]: f for f in (await http.get("/api/partner/masterForms")).json()}
    assert set(masters) == {"Intake Form", "Progress Note", "Adult History"}
    assert masters["Progress Note"]["Type"] == "TreatmentNote"

    body = {
        "SourceMasterFormId": masters["Intake Form"]["Id"],
        "DestinationPracticeId": ODD,
        "CopyAttachedConsentForms": True,
    }
    copied = (await http.post("/api/partner/practice/copyForm", json=body)).json()
    assert (
        copied["Name"] == "Intake Form" and copied["Archived"] is False and copied["Id"] != masters["Intake Form"]["Id"]
    )
    forms = (await http.get(f"/api/partner/practice/{ODD_Q}/forms")).json()
    assert sorted((f["Name"], f["Type"]) for f in forms) == [
        ("HIPAA Release", "ConsentForm"),
        ("Intake Form", "Questionnaire"),
        ("Telehealth Consent", "ConsentForm"),
    ]
    plain = {"SourceMasterFormId": masters["Adult History"]["Id"], "DestinationPracticeId": practice["Id"]}
    assert (await http.post("/api/partner/practice/copyForm", json=plain)).status_code == 200
    assert len(fake.forms(practice["Id"])) == 4
    assert (await http.post("/api/partner/practice/copyForm", json={"DestinationPracticeId": ODD})).status_code == 400
    unknown = {"SourceMasterFormId": "nope", "DestinationPracticeId": ODD}
    assert (await http.post("/api/partner/practice/copyForm", json=unknown)).status_code == 404

    intake = (
        await http.post(
            "/api/v1/intakes/create",
            json={"QuestionnaireId": copied["Id"], "ClientName": "Cy", "ClientEmail": "cy@example.com"},
            headers=v1,
        )
    ).json()
    assert [c["Name"] for c in intake["ConsentForms"]] == ["HIPAA Release", "Telehealth Consent"]
    assert all(c["DocumentType"] == "Html" and c["Signed"] is False for c in intake["ConsentForms"])
    assert len(intake["Questions"]) == 3 and intake["Questions"][0]["Answer"] is None


async def test_create_intake(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http, ExternalPractitionerId="doc")
    form = fake.add_practice_form(practice["Id"], "Short", questions=["How are you?"])
    note = fake.add_practice_form(practice["Id"], "Note", type="TreatmentNote")

    async def create(**body: Any) -> httpx.Response:
        return await http.post("/api/v1/intakes/create", json={"QuestionnaireId": form.id, **body}, headers=v1)

    first = await create(ClientName="Cy", ClientPhone="555", PractitionerId="doc", ExternalClientId="c-1")
    intake = first.json()
    assert first.status_code == 200, first.text
    assert intake["Status"] == "Partial" and intake["DateSubmitted"] is None and intake["AppointmentId"] is None
    assert isinstance(intake["DateCreated"], int) and abs(intake["DateCreated"] / 1000 - time.time()) < 60
    assert intake["Url"] == f"http://127.0.0.1/intake/{intake['Id']}" and len(intake["Password"]) == 6
    assert intake["PractitionerName"] == "Ann Lee1" and intake["Practitioner"] == "ann1@example.com"
    assert intake["Questions"][0]["Text"] == "How are you?" and intake["ExternalClientId"] == "c-1"
    second = (await create(ClientName="Di", ClientEmail="di@example.com")).json()
    assert second["ClientId"] == intake["ClientId"] + 1
    assert (await create(ClientId=intake["ClientId"])).json()["ClientName"] == "Cy"
    again = await create(ExternalClientId="c-1", ClientName="Cy", ClientPhone="555")
    assert again.json()["ClientId"] == intake["ClientId"]
    assert (await create(ExternalClientId="c-1")).status_code == 400  # ClientName is needed without ClientId

    assert (await create(ClientName="No Contact")).status_code == 400
    assert (await create()).status_code == 400
    assert (await create(ClientId=1, PractitionerId="ghost")).status_code == 404
    wrong_type = {"QuestionnaireId": note.id, "ClientId": 1}
    assert (await http.post("/api/v1/intakes/create", json=wrong_type, headers=v1)).status_code == 400
    assert (
        await http.post("/api/v1/intakes/create", json={"QuestionnaireId": "x", "ClientId": 1}, headers=v1)
    ).status_code == 404
    assert fake.client_data(practice["Id"], "doc") == 4
    assert (await http.delete("/api/v1/practitioners/doc", headers=v1)).status_code == 409


async def test_form_token_expires_with_injected_clock(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    practice, v1 = await new_practice(http)
    form = fake.add_practice_form(practice["Id"], "Short", questions=1)
    body = {"QuestionnaireId": form.id, "ClientId": 5}
    intake = (await http.post("/api/v1/intakes/create", json=body, headers=v1)).json()
    other = (await http.post("/api/v1/intakes/create", json=body, headers=v1)).json()
    token = (await http.post(f"/api/v1/intakes/{intake['Id']}/token", headers=v1)).json()
    assert token["Url"] == intake["Url"]
    expires = datetime.strptime(token["Expiration"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert 3590 < (expires - fake.now()).total_seconds() <= 3600

    assert (await http.get(f"/intake/{intake['Id']}", params={"auth": token["Token"]})).status_code == 200
    assert (await http.get(f"/intake/{other['Id']}", params={"auth": token["Token"]})).status_code == 401
    assert (await http.get(f"/intake/{intake['Id']}", params={"auth": "bogus"})).status_code == 401
    fake.advance_clock(3601)
    assert (await http.get(f"/intake/{intake['Id']}", params={"auth": token["Token"]})).status_code == 401
    assert (await http.post("/api/v1/intakes/nope/token", headers=v1)).status_code == 404


# ----- single sign-on over real loopback


async def test_ephemeral_token_and_sso_over_loopback(fake: FakeIntakeQ) -> None:
    async with fake.serve() as base_url, httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Key": PARTNER}) as http:
        assert base_url.startswith("http://127.0.0.1:")
        practice, v1 = await new_practice(http, ExternalPracticeId=ODD, ExternalPractitionerId=ODD)
        main = fake.practice(practice["Id"]).main_practitioner_id
        eph = (await http.get(f"/api/partner/practice/{ODD_Q}/ephemeral")).json()
        assert eph["UserId"] == main
        assert (
            await http.get(f"/api/partner/practice/{ODD_Q}/ephemeral", params={"userId": "ghost"})
        ).status_code == 404
        by_ext = (await http.get(f"/api/partner/practice/{ODD_Q}/ephemeral", params={"userId": ODD})).json()
        assert by_ext["UserId"] == main

        async with httpx.AsyncClient(base_url=base_url, follow_redirects=True) as browser:
            signin = {"token": eph["Token"], "userId": eph["UserId"], "path": "templates"}
            resp = await browser.get("/signin/authenticate", params=signin)
            assert resp.status_code == 200 and resp.url.path == "/templates"
            assert resp.history[0].status_code == 302 and "iq_session" in resp.history[0].headers["set-cookie"]
            again = await browser.get("/signin/authenticate", params=signin)
            assert again.status_code == 401

            wrong_user = {"token": by_ext["Token"], "userId": "someone-else"}
            assert (await browser.get("/signin/authenticate", params=wrong_user)).status_code == 401
            no_key = {"token": by_ext["Token"], "userId": main, "path": "intake"}
            assert (await browser.get("/signin/authenticate", params=no_key)).status_code == 400
            bogus_path = {"token": by_ext["Token"], "userId": main, "path": "billing"}
            assert (await browser.get("/signin/authenticate", params=bogus_path)).status_code == 400
            to_intake = {"token": by_ext["Token"], "userId": main, "path": "intake", "pathKey": "abc"}
            resp = await browser.get("/signin/authenticate", params=to_intake)
            assert resp.history[0].headers["location"] == "/intake/abc" and resp.status_code == 404
            plain = (await http.get(f"/api/partner/practice/{ODD_Q}/ephemeral")).json()
            resp = await browser.get("/signin/authenticate", params={"token": plain["Token"], "userId": ODD})
            assert resp.url.path == "/dashboard" and resp.status_code == 200
        async with httpx.AsyncClient(base_url=base_url) as stranger:
            assert (await stranger.get("/dashboard")).status_code == 401
        assert (await http.get("/api/v1/practitioners", headers=v1)).status_code == 200


# ----- faults, in-process


def flaky(kind: str, **extra: Any) -> FakeIntakeQ:
    fields = {"p429": 0.0, "p5xx": 0.0, "p_drop": 0.0, "p_hang": 0.0, "p_malformed": 0.0}
    fields[kind] = 1.0
    return FakeIntakeQ(PARTNER, seed=3, faults=Faults(**fields, **extra))  # type: ignore[arg-type]


async def attempts(fake: FakeIntakeQ, n: int, read_timeout: float = 5.0) -> list[str]:
    """Create ``n`` practices through the faults; describe each outcome."""
    outcomes = []
    async with fake.client(headers={"X-Auth-Key": PARTNER}, timeout=read_timeout) as http:
        for i in range(n):
            try:
                resp = await http.post("/api/partner/practice", json=practice_body(i))
                try:
                    if resp.status_code == 200:
                        resp.json()
                    outcomes.append(str(resp.status_code))
                except json.JSONDecodeError:
                    outcomes.append("200-malformed")
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


async def test_fault_429_and_503_never_apply() -> None:
    fake = flaky("p429", p_retry_after_missing=0.3, p_retry_after_date=0.3, retry_after=4)
    seen: list[str | None] = []
    async with fake.client(headers={"X-Auth-Key": PARTNER}) as http:
        for i in range(30):
            resp = await http.post("/api/partner/practice", json=practice_body(i))
            assert resp.status_code == 429
            seen.append(resp.headers.get("Retry-After"))
    assert fake.practices == []
    assert None in seen and "4" in seen
    dates = [parsedate_to_datetime(s) for s in seen if s not in (None, "4")]
    assert dates and all(0 < (d - datetime.now(UTC)).total_seconds() <= 5 for d in dates)

    fake = FakeIntakeQ(PARTNER, seed=3, faults=Faults(p5xx=1.0, statuses_5xx=(503,)))
    assert await attempts(fake, 10) == ["503"] * 10
    assert fake.practices == [] and fake.stats.faults["503"] == 10


@pytest.mark.parametrize("kind", ["p5xx", "p_drop", "p_malformed", "p_hang"])
async def test_faults_before_or_after_apply(kind: str) -> None:
    fake = flaky(kind, hang_seconds=5.0, statuses_5xx=(500, 502))
    outcomes = await attempts(fake, 16, read_timeout=0.02)
    expected = {
        "p5xx": {"500", "502"},
        "p_drop": {"RemoteProtocolError"},
        "p_malformed": {"200-malformed"},
        "p_hang": {"ReadTimeout"},
    }[kind]
    assert set(outcomes) == expected
    whens = [r.fault_when for r in fake.requests]
    assert set(whens) == {"before", "after"}
    # Exactly the "after" requests changed state: the client got no proper answer for any of them.
    assert len(fake.practices) == whens.count("after")
    # Same seed and order: the same plan again.
    again = flaky(kind, hang_seconds=5.0, statuses_5xx=(500, 502))
    assert await attempts(again, 16, read_timeout=0.02) == outcomes
    assert [r.fault_when for r in again.requests] == whens


async def test_malformed_styles_and_faults_only_on_api() -> None:
    fake = flaky("p_malformed")
    async with fake.client(headers={"X-Auth-Key": PARTNER}) as http:
        types = set()
        for _ in range(12):
            resp = await http.get("/api/partner/masterForms")
            assert resp.status_code == 200
            types.add(resp.headers["content-type"].split(";")[0])
            with pytest.raises(json.JSONDecodeError):
                resp.json()
        assert types == {"application/json", "text/html"}
        assert (await http.get("/dashboard")).status_code == 401  # a web page: no fault, just not signed in
    assert fake.stats.faults["malformed"] == 12


async def test_latency_and_seeded_mix_is_deterministic() -> None:
    faults = Faults(latency=0.005, jitter=0.005, p429=0.2, p5xx=0.2, p_drop=0.1, p_malformed=0.1)
    runs = []
    for _ in range(2):
        fake = FakeIntakeQ(PARTNER, seed=11, faults=faults)
        started = time.perf_counter()
        runs.append(await attempts(fake, 20))
        assert time.perf_counter() - started >= 20 * 0.005
    assert runs[0] == runs[1] and len(set(runs[0])) >= 4
    different = FakeIntakeQ(PARTNER, seed=12, faults=faults)
    assert await attempts(different, 20) != runs[0]


async def test_faults_can_change_at_runtime(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    fake.faults = Faults(p429=1.0)
    assert (await http.get("/api/partner/masterForms")).status_code == 429
    fake.faults = Faults()
    assert (await http.get("/api/partner/masterForms")).status_code == 200


async def test_rate_limit_per_key() -> None:
    now = [100.0]
    fake = FakeIntakeQ(PARTNER, seed=1, faults=Faults(rate_limit=3), monotonic=lambda: now[0])
    async with fake.client(headers={"X-Auth-Key": PARTNER}) as http:
        statuses = [(await http.get("/api/partner/masterForms")).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        resp = await http.get("/api/partner/masterForms")
        assert resp.headers["Retry-After"] == "1"
        async with fake.client(headers={"X-Auth-Key": "other"}) as other:  # a different key has its own window
            assert (await other.get("/api/partner/masterForms")).status_code == 401
        now[0] += 1.01
        assert (await http.get("/api/partner/masterForms")).status_code == 200
    assert fake.stats.faults["rate_limit"] == 3


async def test_rate_limit_over_a_longer_window() -> None:
    now = [0.0]
    fake = FakeIntakeQ(PARTNER, seed=1, faults=Faults(rate_limit=2, rate_window=60), monotonic=lambda: now[0])
    async with fake.client(headers={"X-Auth-Key": PARTNER}) as http:
        statuses = [(await http.get("/api/partner/masterForms")).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert (await http.get("/api/partner/masterForms")).headers["Retry-After"] == "60"
        now[0] += 30
        assert (await http.get("/api/partner/masterForms")).status_code == 429
        now[0] += 30
        assert (await http.get("/api/partner/masterForms")).status_code == 200


async def test_counters_and_reset(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    await new_practice(http)
    await new_practice(http, 2)
    await http.get("/api/partner/nothing-here")
    await http.delete("/api/partner/practice")
    assert fake.stats.calls[("POST", "/api/partner/practice")] == 2
    assert fake.stats.calls[("GET", "/api/partner/practice/{practiceId}/key")] == 2
    assert fake.stats.statuses[200] == 4 and fake.stats.statuses[404] == 1 and fake.stats.statuses[405] == 1
    assert fake.requests[-2].route is None
    fake.reset_stats()
    assert not fake.stats.calls and not fake.stats.statuses and fake.requests == []
    assert len(fake.practices) == 2


# ----- faults over real loopback


async def test_a_capped_request_log_keeps_the_newest_and_the_counters_count_all() -> None:
    fake = FakeIntakeQ(PARTNER, seed=7, log_limit=3)
    async with fake.client(headers={"X-Auth-Key": PARTNER}) as http:
        for n in range(5):
            await http.get(f"/api/partner/practice/P{n}/key")
    assert [r.raw_path for r in fake.requests] == [f"/api/partner/practice/P{n}/key" for n in (2, 3, 4)]
    assert fake.stats.logged == 5 and fake.stats.statuses[404] == 5
    assert fake.stats.calls[("GET", "/api/partner/practice/{practiceId}/key")] == 5
    fake.reset_stats()
    assert fake.requests == [] and fake.stats.logged == 0
    silent = FakeIntakeQ(PARTNER, log_limit=0)
    async with silent.client(headers={"X-Auth-Key": PARTNER}) as http:
        await http.get("/api/partner/masterForms")
    assert silent.requests == [] and silent.stats.logged == 1 and silent.stats.statuses[200] == 1
    with pytest.raises(ValueError):
        FakeIntakeQ(log_limit=-1)


async def test_key_and_external_id_lookups_follow_rotation_renames_and_deletion(
    fake: FakeIntakeQ, http: httpx.AsyncClient
) -> None:
    first, first_key = await new_practice(http, 1, ExternalPracticeId="ext-a")
    await new_practice(http, 2, ExternalPracticeId="ext-b")
    names = {k: first[k] for k in ("PracticeName", "FirstName", "LastName", "Email")}
    moved = await http.put("/api/partner/practice", json={"Id": first["Id"], "ExternalPracticeId": "ext-c", **names})
    assert moved.status_code == 200
    assert (await http.get("/api/partner/practice/ext-a/key")).status_code == 404
    assert (await http.get("/api/partner/practice/ext-c/key")).json()["ApiKey"] == first_key["X-Auth-Key"]
    assert (await http.get("/api/partner/practice", params={"externalPracticeId": "ext-c"})).json()[0]["Id"] == first[
        "Id"
    ]
    assert (await http.get("/api/partner/practice", params={"externalPracticeId": "ext-a"})).json() == []
    taken = await http.put("/api/partner/practice", json={"Id": first["Id"], "ExternalPracticeId": "ext-b", **names})
    assert taken.status_code == 409
    assert (
        await http.post("/api/partner/practice", json=practice_body(3, ExternalPracticeId="ext-a"))
    ).status_code == 200
    new_key = fake.rotate_practice_key(first["Id"])
    assert (await http.get("/api/v1/practitioners", headers=first_key)).status_code == 401
    assert (await http.get("/api/v1/practitioners", headers={"X-Auth-Key": new_key})).status_code == 200
    assert (await http.delete("/api/partner/practice/ext-c")).status_code == 200
    assert (await http.get("/api/v1/practitioners", headers={"X-Auth-Key": new_key})).status_code == 401
    assert (await http.get("/api/partner/practice/ext-c/key")).status_code == 404
    again = await http.post("/api/partner/practice", json=practice_body(4, ExternalPracticeId="ext-c"))
    assert again.status_code == 200
    assert fake.practice("ext-c").id == again.json()["Id"]


async def test_drop_and_hang_over_loopback() -> None:
    fake = FakeIntakeQ(PARTNER, seed=5, faults=Faults(p_drop=1.0))
    started = time.perf_counter()
    async with fake.serve() as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Key": PARTNER}, timeout=0.3) as http:
            for _ in range(4):
                with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                    await http.get("/api/partner/masterForms")
            fake.faults = Faults(p_hang=1.0, hang_seconds=20)
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/api/partner/masterForms")
            fake.faults = Faults()
            assert (await http.get("/api/partner/masterForms")).status_code == 200
        # A hang still in progress when the server stops must not hold up the shutdown.
        fake.faults = Faults(p_hang=1.0, hang_seconds=20)
        async with httpx.AsyncClient(base_url=base_url, headers={"X-Auth-Key": PARTNER}, timeout=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/api/partner/masterForms")
    assert time.perf_counter() - started < 3
    assert fake.stats.faults["drop"] == 4 and fake.stats.faults["hang"] == 2


async def test_serve_twice_and_port_zero(fake: FakeIntakeQ) -> None:
    for _ in range(2):
        started = time.perf_counter()
        async with fake.serve(port=0) as base_url, httpx.AsyncClient(base_url=base_url) as http:
            assert (await http.get("/api/partner/masterForms", headers={"X-Auth-Key": PARTNER})).status_code == 200
        assert time.perf_counter() - started < 1


def test_command_line_server_prints_key_and_serves() -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env_path = src + (":" + sys.path[0] if sys.path else "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "intakeq_partner.testing", "--port", "0", "--seed", "2", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        key = proc.stdout.readline().split()[-1]
        resp = httpx.get(f"{url}/api/partner/masterForms", headers={"X-Auth-Key": key})
        assert resp.status_code == 200 and len(resp.json()) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=5)


async def test_hang_in_process_without_read_timeout_is_bounded() -> None:
    fake = FakeIntakeQ(PARTNER, seed=1, faults=Faults(p_hang=1.0, hang_seconds=0.05))
    async with fake.client(headers={"X-Auth-Key": PARTNER}, timeout=None) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/api/partner/masterForms")


async def test_serve_on_a_taken_port_raises(fake: FakeIntakeQ) -> None:
    async with fake.serve() as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            async with fake.serve(port=port):
                pass


async def test_a_client_that_leaves_mid_body_is_recorded_without_a_traceback(
    fake: FakeIntakeQ, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake.serve() as base_url:
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        _, writer = await asyncio.open_connection(host, int(port))
        head = f"POST /api/partner/practice HTTP/1.1\r\nHost: x\r\nX-Auth-Key: {PARTNER}\r\nContent-Length: 500\r\n"
        writer.write(head.encode() + b"Content-Type: application/json\r\n\r\n" + b'{"PracticeName": ')
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        for _ in range(500):  # bounded: the server notices within a few loop turns
            if fake.requests:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=base_url) as http:  # and it still serves
            assert (await http.get("/api/partner/masterForms", headers={"X-Auth-Key": PARTNER})).status_code == 200
    assert [(r.route, r.status) for r in fake.requests[:1]] == [("/api/partner/practice", None)]
    assert fake.practices == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
