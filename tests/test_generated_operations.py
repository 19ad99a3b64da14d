"""Each generated operation sends exactly the request the spec describes (respx checks the wire)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx
import pytest
import respx

from generator import spec
from intakeq_partner._errors import error_from_response
from intakeq_partner._generated import models as m
from intakeq_partner._wire import RequestSpec, segment

T = TypeVar("T")

pytestmark = pytest.mark.usefixtures("httpx_stack")  # respx mocks httpx's transports only

BASE = "https://intakeq.test"
KEY = "k-" + "7" * 30

# (module, call arguments, method, raw path, query, JSON body or None, response JSON)
PRACTICE = {"Id": "P1", "PracticeName": "ABC", "DateCreated": "2024-05-01T10:00:00.000Z"}
PRACTITIONER = {"Id": "u1", "FirstName": "Ann", "IsInactive": False}
ASSISTANT = {"Id": "a1", "Name": "Al", "PractitionerIds": ["u1"]}
FORM = {"Id": "f1", "Name": "Intake", "Archived": False, "Type": "Questionnaire"}
CASES: list[tuple[str, Callable[[], dict[str, Any]], str, str, dict[str, str], Any, Any]] = [
    (
        "practices.create_practice",
        lambda: {"body": m.PracticeCreate("ABC", "Jo", "Li", "jo@x.test", external_practice_id="e1")},
        "POST", "/api/partner/practice", {},
        {"PracticeName": "ABC", "FirstName": "Jo", "LastName": "Li", "Email": "jo@x.test", "ExternalPracticeId": "e1"},
        PRACTICE,
    ),
    (
        "practices.update_practice",
        lambda: {"body": m.PracticeUpdate("ABC", "Jo", "Li", "jo@x.test", id="P1", city="NYC")},
        "PUT", "/api/partner/practice", {},
        {"Id": "P1", "PracticeName": "ABC", "FirstName": "Jo", "LastName": "Li", "Email": "jo@x.test", "City": "NYC"},
        PRACTICE,
    ),
    ("practices.delete_practice", lambda: {"practice_id": "e 1"}, "DELETE", "/api/partner/practice/e%201", {}, None, None),
    (
        "practices.list_practices",
        lambda: {"external_practice_id": "e1", "page": 2},
        "GET", "/api/partner/practice", {"externalPracticeId": "e1", "page": "2"}, None, [PRACTICE],
    ),
    ("practices.get_practice_api_key", lambda: {"practice_id": "P1"}, "GET", "/api/partner/practice/P1/key", {}, None,
     {"ApiKey": "abc"}),
    (
        "practices.get_ephemeral_token",
        lambda: {"practice_id": "P1", "user_id": "dr-lee"},
        "GET", "/api/partner/practice/P1/ephemeral", {"userId": "dr-lee"}, None, {"Token": "t", "UserId": "u1"},
    ),
    ("forms.list_master_forms", lambda: {}, "GET", "/api/partner/masterForms", {}, None, [FORM]),
    ("forms.list_practice_forms", lambda: {"practice_id": "P1"}, "GET", "/api/partner/practice/P1/forms", {}, None,
     [FORM]),
    (
        "forms.copy_form",
        lambda: {"body": m.CopyFormRequest("f1", "e1", copy_attached_consent_forms=True)},
        "POST", "/api/partner/practice/copyForm", {},
        {"SourceMasterFormId": "f1", "DestinationPracticeId": "e1", "CopyAttachedConsentForms": True}, FORM,
    ),
    (
        "practitioners.create_practitioner",
        lambda: {"body": m.PractitionerCreate("Ann", "Lee", "a@x.test", role_name="Administrator")},
        "POST", "/api/v1/practitioners", {},
        {"FirstName": "Ann", "LastName": "Lee", "Email": "a@x.test", "RoleName": "Administrator"}, PRACTITIONER,
    ),
    (
        "practitioners.update_practitioner",
        lambda: {"body": m.PractitionerUpdate(external_practitioner_id="dr", email="n@x.test")},
        "PUT", "/api/v1/practitioners", {}, {"ExternalPractitionerId": "dr", "Email": "n@x.test"}, PRACTITIONER,
    ),
    (
        "practitioners.list_practitioners",
        lambda: {"include_inactive": True},
        "GET", "/api/v1/practitioners", {"includeInactive": "true"}, None, [PRACTITIONER],
    ),
    ("practitioners.disable_practitioner", lambda: {"practitioner_id": "dr"}, "POST", "/api/v1/practitioners/dr/disable",
     {}, None, None),
    ("practitioners.enable_practitioner", lambda: {"practitioner_id": "dr"}, "POST", "/api/v1/practitioners/dr/enable",
     {}, None, None),
    ("practitioners.delete_practitioner", lambda: {"practitioner_id": "dr"}, "DELETE", "/api/v1/practitioners/dr", {},
     None, None),
    (
        "practitioners.transfer_practitioner_data",
        lambda: {"source_practitioner_id": "a", "destination_practitioner_id": "b"},
        "POST", "/api/v1/practitioners/a/transferData/b", {}, None, None,
    ),
    (
        "practitioners.transfer_client_ownership",
        lambda: {"source_practitioner_id": "a", "destination_practitioner_id": "b"},
        "POST", "/api/v1/practitioners/a/transferClientOwnership/b", {}, None, None,
    ),
    (
        "assistants.create_assistant",
        lambda: {"body": m.AssistantCreate("Al", "al@x.test", practitioner_ids=["dr"])},
        "POST", "/api/v1/assistants", {}, {"Name": "Al", "Email": "al@x.test", "PractitionerIds": ["dr"]}, ASSISTANT,
    ),
    (
        "assistants.update_assistant",
        lambda: {"body": m.AssistantUpdate(id="a1", practitioner_ids=[])},
        "PUT", "/api/v1/assistants", {}, {"Id": "a1", "PractitionerIds": []}, ASSISTANT,
    ),
    ("assistants.list_assistants", lambda: {}, "GET", "/api/v1/assistants", {}, None, [ASSISTANT]),
    ("assistants.delete_assistant", lambda: {"assistant_id": "a1"}, "DELETE", "/api/v1/assistants/a1", {}, None, None),
    (
        "intakes.create_intake",
        lambda: {"body": m.IntakeCreate("q1", client_name="Dex", client_email="d@x.test")},
        "POST", "/api/v1/intakes/create", {}, {"QuestionnaireId": "q1", "ClientName": "Dex", "ClientEmail": "d@x.test"},
        {"Id": "i1", "DateCreated": 1458526480368, "Questions": [], "ConsentForms": []},
    ),
    ("intakes.create_intake_token", lambda: {"intake_id": "i1"}, "POST", "/api/v1/intakes/i1/token", {}, None,
     {"Token": "t", "Url": "https://x.test/intake/i1", "Expiration": "2022-04-14T15:26:42.089Z"}),
]  # fmt: skip


def test_every_operation_has_a_case() -> None:
    named = {case[0].split(".")[-1] for case in CASES}
    assert sorted(set(spec.operations(spec.load())) - named) == []


class PlainSender:
    """The smallest Sender: one httpx client and one key, no policy; enough to test each operation's wire format."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client, self.key = client, key

    async def send(self, request: RequestSpec, parse: Callable[[httpx.Response, RequestSpec], T]) -> T:
        response = await self.client.request(
            request.method, request.path, params=request.params or None, json=request.json,
            headers={"X-Auth-Key": self.key},
        )  # fmt: skip
        if not response.is_success:
            raise error_from_response(response, request.method, request.path)
        return parse(response, request)


@pytest.mark.parametrize(
    ("name", "arguments", "method", "path", "query", "body", "answer"), CASES, ids=[c[0] for c in CASES]
)
async def test_generated_call_sends_what_the_spec_says(
    name: str,
    arguments: Callable[[], dict[str, Any]],
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    answer: Any,
) -> None:
    module = importlib.import_module(f"intakeq_partner._generated.api.{name}")
    with respx.mock(assert_all_called=True) as router:
        route = router.route(method=method, scheme="https", host="intakeq.test").mock(
            return_value=httpx.Response(200, json=answer) if answer is not None else httpx.Response(200)
        )
        async with httpx.AsyncClient(base_url=BASE) as client:
            result = await module.asyncio(PlainSender(client, KEY), **arguments())
    sent = route.calls.last.request
    assert sent.url.raw_path.split(b"?")[0].decode() == path
    assert dict(sent.url.params) == query
    assert sent.headers["X-Auth-Key"] == KEY
    assert (json.loads(sent.content) if sent.content else None) == body
    if answer is None:
        assert result is None
    elif isinstance(answer, list):
        assert len(result) == 1 and result[0].id == answer[0]["Id"]
    else:
        assert result.additional_properties == {} and getattr(result, "id", None) in (answer.get("Id"), None)


@pytest.mark.parametrize("hostile", ["../x", "..", ".", "a/b?c", "a#b", "%2F", "x y", "é/ü", "?", "a/../../b"])
async def test_an_id_stays_inside_its_path_segment(hostile: str) -> None:
    module = importlib.import_module("intakeq_partner._generated.api.practices.get_practice_api_key")
    with respx.mock() as router:
        route = router.get(host="intakeq.test").mock(return_value=httpx.Response(200, json={"ApiKey": "k"}))
        async with httpx.AsyncClient(base_url=BASE) as client:
            await module.asyncio(PlainSender(client, KEY), hostile)
    raw = route.calls.last.request.url.raw_path.decode()
    assert raw == f"/api/partner/practice/{segment(hostile)}/key"
    assert "?" not in raw and "#" not in raw and raw.count("/") == 5
    assert unquote(raw.split("/")[4]) == hostile


def test_an_empty_id_is_refused_before_sending() -> None:
    module = importlib.import_module("intakeq_partner._generated.api.practices.delete_practice")
    with pytest.raises(ValueError, match="empty"):
        module.build_request("")
