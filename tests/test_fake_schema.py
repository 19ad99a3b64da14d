"""The fake answers what the spec promises: every success and error body validated against openapi/ with jsonschema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import PARTNER_KEY
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from generator import spec
from intakeq_partner.testing import FakeIntakeQ

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi" / "intakeq-partner.yaml"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
SPEC_URI = "urn:intakeq-partner-spec"
REGISTRY: Registry[Any] = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
PARTNER = PARTNER_KEY
HTTP_METHODS = ("get", "put", "post", "delete")


def pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def operations() -> dict[str, tuple[str, str]]:
    """operationId -> (METHOD, path template), straight from the spec."""
    found = {}
    for path, item in SPEC["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                found[item[method]["operationId"]] = (method.upper(), path)
    return found


OPERATIONS = operations()


def validator_for(operation_id: str, status: int) -> Draft202012Validator | None:
    """A validator for the JSON body of `status` on the operation, or None when the spec promises no body.

    Fails the test when the spec does not list the status at all (5XX covers every 5xx).
    """
    method, path = OPERATIONS[operation_id]
    responses = SPEC["paths"][path][method.lower()]["responses"]
    key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
    assert key in responses, f"{operation_id} answered {status}, which the spec does not list"
    response = responses[key]
    where = ("paths", path, method.lower(), "responses", key)
    if "$ref" in response:
        ref = response["$ref"]
        response = REGISTRY.resolver(SPEC_URI).lookup(f"{SPEC_URI}{ref}").contents
        where = tuple(ref.removeprefix("#/").split("/"))
    if "content" not in response:
        return None
    schema_ref = f"{SPEC_URI}#/{pointer(*where, 'content', 'application/json', 'schema')}"
    return Draft202012Validator({"$ref": schema_ref}, registry=REGISTRY, format_checker=FormatChecker())


def check(operation_id: str, response: httpx.Response, status: int = 200) -> Any:
    """Assert the status and validate the body; return the parsed JSON (None without a body)."""
    assert response.status_code == status, (operation_id, response.status_code, response.text)
    validator = validator_for(operation_id, status)
    if validator is None:
        assert response.content in (b"", b"null", b"{}")
        return None
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{operation_id} {status}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return body


def test_the_validator_rejects_what_the_spec_forbids() -> None:
    validator = validator_for("create_intake", 200)
    assert validator is not None
    assert not validator.is_valid({"Name": "no Id"})
    assert not validator.is_valid({"Id": "i1", "DateCreated": "2024-01-01"})  # v1 times are Unix milliseconds
    assert not validator.is_valid({"Id": "i1", "Questions": [{"Text": "no Id"}]})  # nested $ref resolved
    assert validator.is_valid({"Id": "i1", "Status": "SomethingNew", "Extra": 1})
    forms = validator_for("list_master_forms", 200)
    assert forms is not None and not forms.is_valid({"Id": "f"}) and forms.is_valid([])
    practice = validator_for("create_practice", 200)
    assert practice is not None and not practice.is_valid({"Id": "P", "DateCreated": "yesterday"})
    with pytest.raises(AssertionError, match="does not list"):
        validator_for("list_master_forms", 409)


def fields_sent(schema: str, data: Any, found: dict[str, set[str]]) -> None:
    """Record, per schema, the properties present in an answer (nested objects included)."""
    if isinstance(data, list):
        for item in data:
            fields_sent(schema, item, found)
        return
    if not isinstance(data, dict):
        return
    found.setdefault(schema, set()).update(data)
    properties = spec.schemas(SPEC)[schema].get("properties", {})
    for name, value in data.items():
        prop = properties.get(name, {})
        inner = spec.ref_name(prop) or spec.ref_name(prop.get("items", {}))
        if inner is not None and value is not None:
            fields_sent(inner, value, found)


async def test_every_operation_answers_the_documented_shape(fake: FakeIntakeQ, http: httpx.AsyncClient) -> None:
    seen: set[str] = set()
    sent: dict[str, set[str]] = {}
    registry = spec.operations(SPEC)

    async def call(operation_id: str, path_params: dict[str, str] | None = None, **kwargs: Any) -> Any:
        method, template = OPERATIONS[operation_id]
        path = template.format(**(path_params or {}))
        seen.add(operation_id)
        body = check(operation_id, await http.request(method, path, **kwargs))
        response = registry[operation_id].response
        if response is not None:
            fields_sent(response, body, sent)
        return body

    body = {"PracticeName": "P", "FirstName": "Ann", "LastName": "Lee", "Email": "ann@example.com"}
    practice = await call("create_practice", json={**body, "ExternalPracticeId": "e1", "City": "Oslo"})
    ref = {"practiceId": practice["Id"]}
    await call("update_practice", json={**body, "Id": practice["Id"], "City": "Rome"})
    assert len(await call("list_practices")) == 1
    await call("list_practices", params={"externalPracticeId": "e1", "page": 1})
    key = (await call("get_practice_api_key", ref))["ApiKey"]
    await call("get_ephemeral_token", ref)
    masters = await call("list_master_forms")
    copy = await call(
        "copy_form",
        json={"SourceMasterFormId": masters[0]["Id"], "DestinationPracticeId": "e1", "CopyAttachedConsentForms": True},
    )
    await call("list_practice_forms", ref)

    v1 = {"X-Auth-Key": key}
    doc = await call(
        "create_practitioner",
        json={"FirstName": "Bo", "LastName": "Ek", "Email": "bo@example.com", "ExternalPractitionerId": "d"},
        headers=v1,
    )
    who = {"practitionerId": doc["Id"]}
    await call("update_practitioner", json={"Id": doc["Id"], "LastName": "Berg"}, headers=v1)
    await call("disable_practitioner", who, headers=v1)
    await call("list_practitioners", params={"includeInactive": "true"}, headers=v1)
    await call("enable_practitioner", who, headers=v1)
    assistant = await call(
        "create_assistant", json={"Name": "Al", "Email": "al@example.com", "PractitionerIds": ["d"]}, headers=v1
    )
    await call("update_assistant", json={"Id": assistant["Id"], "PractitionerIds": []}, headers=v1)
    await call("list_assistants", headers=v1)
    await call("delete_assistant", {"assistantId": assistant["Id"]}, headers=v1)
    intake = await call(
        "create_intake",
        json={"QuestionnaireId": copy["Id"], "ClientName": "Cy", "ClientEmail": "cy@example.com"},
        headers=v1,
    )
    assert intake["Questions"] and intake["ConsentForms"]  # the nested schemas were exercised
    await call("create_intake_token", {"intakeId": intake["Id"]}, headers=v1)
    main = fake.practice(practice["Id"]).main_practitioner_id
    moves = {"sourcePractitionerId": doc["Id"], "destinationPractitionerId": main}
    await call("transfer_client_ownership", moves, headers=v1)
    await call("transfer_practitioner_data", moves, headers=v1)
    await call("delete_practitioner", who, headers=v1)
    await call("delete_practice", ref)

    assert sorted(set(OPERATIONS) - seen) == []
    # Every property of every object the fake answered with is one it fills (null when it has no value): a new
    # response field in the spec fails here, by name, until the fake sends it.
    never = [f"{schema}.{name}" for schema in sent for name in spec.fields(SPEC, schema) if name not in sent[schema]]
    assert never == [], f"the fake never sends {', '.join(never)}"


async def test_error_answers_are_documented_and_match_the_error_schema(
    fake: FakeIntakeQ, http: httpx.AsyncClient
) -> None:
    body = {"PracticeName": "P", "FirstName": "Ann", "LastName": "Lee", "Email": "ann@example.com"}
    practice = check(
        "create_practice", await http.post("/api/partner/practice", json={**body, "ExternalPracticeId": "x"})
    )
    key = check("get_practice_api_key", await http.get(f"/api/partner/practice/{practice['Id']}/key"))["ApiKey"]
    v1 = {"X-Auth-Key": key}
    doc = {"FirstName": "Bo", "LastName": "Ek", "Email": "bo@example.com", "ExternalPractitionerId": "d"}
    check("create_practitioner", await http.post("/api/v1/practitioners", json=doc, headers=v1))
    fake.add_client_data(practice["Id"], "d", 1)

    cases: list[tuple[str, int, httpx.Response]] = [
        ("create_practice", 409, await http.post("/api/partner/practice", json={**body, "ExternalPracticeId": "x"})),
        ("create_practice", 400, await http.post("/api/partner/practice", json={"PracticeName": "P"})),
        ("update_practice", 404, await http.put("/api/partner/practice", json={**body, "Id": "FFFFFFFF"})),
        ("delete_practice", 404, await http.delete("/api/partner/practice/nope")),
        ("get_practice_api_key", 401, await http.get("/api/partner/practice/x/key", headers={"X-Auth-Key": "bad"})),
        ("list_practices", 401, await http.get("/api/partner/practice", headers=v1)),
        (
            "copy_form",
            404,
            await http.post(
                "/api/partner/practice/copyForm", json={"SourceMasterFormId": "no", "DestinationPracticeId": "x"}
            ),
        ),
        ("list_practitioners", 401, await http.get("/api/v1/practitioners")),
        ("create_practitioner", 409, await http.post("/api/v1/practitioners", json=doc, headers=v1)),
        (
            "create_practitioner",
            400,
            await http.post(
                "/api/v1/practitioners", json={**doc, "ExternalPractitionerId": "e", "RoleName": "Nope"}, headers=v1
            ),
        ),
        ("delete_practitioner", 409, await http.delete("/api/v1/practitioners/d", headers=v1)),
        ("disable_practitioner", 404, await http.post("/api/v1/practitioners/ghost/disable", headers=v1)),
        ("update_assistant", 400, await http.put("/api/v1/assistants", json={"Name": "x"}, headers=v1)),
        (
            "create_intake",
            404,
            await http.post("/api/v1/intakes/create", json={"QuestionnaireId": "q", "ClientId": 1}, headers=v1),
        ),
        ("create_intake_token", 404, await http.post("/api/v1/intakes/nope/token", headers=v1)),
    ]
    for operation_id, status, response in cases:
        error = check(operation_id, response, status)
        assert isinstance(error["Message"], str) and error["Message"]

    fake.faults.p429, fake.faults.retry_after = 1.0, 3
    limited = await http.get("/api/partner/masterForms")
    check("list_master_forms", limited, 429)
    assert limited.headers["Retry-After"] == "3"
    fake.faults.p429, fake.faults.p5xx, fake.faults.statuses_5xx = 0.0, 1.0, (500, 503)
    for _ in range(4):
        failed = await http.get("/api/partner/masterForms")
        check("list_master_forms", failed, failed.status_code)
