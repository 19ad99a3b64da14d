"""The facade on the wire (respx): each operation of the spec, the right key for each, the rules before sending."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from generator import spec
from intakeq_partner import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FormToken,
    IntakeQError,
    InvalidRequestError,
    NotFoundError,
    PartnerClient,
    PermissionDeniedError,
    PracticeClient,
    RateLimitError,
    ResponseValidationError,
    ServerError,
)
from intakeq_partner._generated.api.assistants import list_assistants
from intakeq_partner._generated.api.practices import list_practices
from intakeq_partner._generated.models import Assistant, Practice, Practitioner
from intakeq_partner._wire import structure

pytestmark = pytest.mark.usefixtures("httpx_stack")  # respx mocks httpx's transports only

BASE = "https://intakeq.test"
PARTNER = "partner-key-on-the-wire"
PRACTICE = "practice-key-of-P1"
PRACTICE_JSON = {"Id": "P1", "PracticeName": "ABC", "DateCreated": "2024-05-01T10:00:00.000Z"}
PRACTITIONER_JSON = {"Id": "u1", "FirstName": "Ann", "ExternalPractitionerId": "dr", "IsInactive": False}
ASSISTANT_JSON = {"Id": "a1", "Name": "Al", "ExternalAssistantId": "al", "PractitionerIds": ["u1"]}
FORM_JSON = {"Id": "f1", "Name": "Intake", "Archived": False, "Type": "Questionnaire"}
INTAKE_JSON = {"Id": "i1", "DateCreated": 1458526480368, "Questions": [], "ConsentForms": []}
TOKEN_JSON = {"Token": "t0k", "Url": "https://x.test/intake/i1", "Expiration": "2030-04-14T15:26:42.089Z"}
NAMES: dict[str, Any] = {"practice_name": "ABC", "first_name": "Jo", "last_name": "Li", "email": "jo@x.test"}
NAMES_WIRE = {"PracticeName": "ABC", "FirstName": "Jo", "LastName": "Li", "Email": "jo@x.test"}

READ_PRACTICE = structure(Practice, {**PRACTICE_JSON, **NAMES_WIRE, "City": "Oslo", "Plan": "gold"})
READ_DOCTOR = structure(Practitioner, {**PRACTITIONER_JSON, "CompleteName": "Ann", "DateCreated": 1716888615123})
READ_ASSISTANT = structure(Assistant, ASSISTANT_JSON)

Call = Callable[[PartnerClient], Awaitable[Any]]


def v1(call: Callable[[PracticeClient], Awaitable[Any]]) -> Call:
    return lambda partner: call(partner.practice("P1"))


# (call, method, raw path, query, JSON body or None, answer JSON or None, key scope)
CASES: dict[str, tuple[Call, str, str, dict[str, str], Any, Any]] = {
    "create_practice": (
        lambda p: p.practices.create(**NAMES, city="NYC", forms_enabled=True),
        "POST", "/api/partner/practice", {}, {**NAMES_WIRE, "City": "NYC", "FormsEnabled": True}, PRACTICE_JSON,
    ),
    "update_practice": (
        # As read (`current`, so this case makes one call): the update sends it whole, with the change.
        lambda p: p.practices.update("P1", booking_enabled=False, current=READ_PRACTICE),
        "PUT", "/api/partner/practice", {},
        {"Id": "P1", **NAMES_WIRE, "City": "Oslo", "BookingEnabled": False, "Plan": "gold"}, PRACTICE_JSON,
    ),
    "list_practices": (
        lambda p: p.practices.list(page=2), "GET", "/api/partner/practice", {"page": "2"}, None, [PRACTICE_JSON],
    ),
    "list_practices_filtered": (
        lambda p: p.practices.get(email="a b@x.test"),
        "GET", "/api/partner/practice", {"email": "a b@x.test"}, None,
        [{**PRACTICE_JSON, "Email": "a b@x.test"}],
    ),
    "delete_practice": (lambda p: p.practices.delete("e/1"), "DELETE", "/api/partner/practice/e%2F1", {}, None, None),
    "get_practice_api_key": (
        lambda p: p.practices.api_key("P1"), "GET", "/api/partner/practice/P1/key", {}, None, {"ApiKey": "k"},
    ),
    "get_ephemeral_token": (
        lambda p: p.practices.ephemeral_token("P1", user_id="dr"),
        "GET", "/api/partner/practice/P1/ephemeral", {"userId": "dr"}, None, {"Token": "t", "UserId": "u1"},
    ),
    "list_master_forms": (lambda p: p.forms.master(), "GET", "/api/partner/masterForms", {}, None, [FORM_JSON]),
    "list_practice_forms": (
        lambda p: p.forms.list("P1"), "GET", "/api/partner/practice/P1/forms", {}, None, [FORM_JSON],
    ),
    "copy_form": (
        lambda p: p.forms.copy(source_master_form_id="f1", practice="P1", copy_attached_consent_forms=True),
        "POST", "/api/partner/practice/copyForm", {},
        {"SourceMasterFormId": "f1", "DestinationPracticeId": "P1", "CopyAttachedConsentForms": True}, FORM_JSON,
    ),
    "create_practitioner": (
        v1(lambda c: c.practitioners.create(first_name="Ann", last_name="Lee", email="a@x.test", role_name="Admin")),
        "POST", "/api/v1/practitioners", {},
        {"FirstName": "Ann", "LastName": "Lee", "Email": "a@x.test", "RoleName": "Admin"}, PRACTITIONER_JSON,
    ),
    "update_practitioner": (
        v1(lambda c: c.practitioners.update("dr", email="n@x.test", current=READ_DOCTOR)),
        "PUT", "/api/v1/practitioners", {},
        {"Id": "u1", "ExternalPractitionerId": "dr", "FirstName": "Ann", "Email": "n@x.test"}, PRACTITIONER_JSON,
    ),
    "list_practitioners": (
        v1(lambda c: c.practitioners.list(include_inactive=True)),
        "GET", "/api/v1/practitioners", {"includeInactive": "true", "page": "1"}, None, [PRACTITIONER_JSON],
    ),
    "list_practitioners_active": (
        v1(lambda c: c.practitioners.list()), "GET", "/api/v1/practitioners", {"page": "1"}, None, [PRACTITIONER_JSON],
    ),
    "disable_practitioner": (
        v1(lambda c: c.practitioners.disable("dr")), "POST", "/api/v1/practitioners/dr/disable", {}, None, None,
    ),
    "enable_practitioner": (
        v1(lambda c: c.practitioners.enable("dr")), "POST", "/api/v1/practitioners/dr/enable", {}, None, None,
    ),
    "delete_practitioner": (
        v1(lambda c: c.practitioners.delete("dr")), "DELETE", "/api/v1/practitioners/dr", {}, None, None,
    ),
    "transfer_practitioner_data": (
        v1(lambda c: c.practitioners.transfer_data(source="a", destination="b")),
        "POST", "/api/v1/practitioners/a/transferData/b", {}, None, None,
    ),
    "transfer_client_ownership": (
        v1(lambda c: c.practitioners.transfer_client_ownership(source="a", destination="b")),
        "POST", "/api/v1/practitioners/a/transferClientOwnership/b", {}, None, None,
    ),
    "create_assistant": (
        v1(lambda c: c.assistants.create(name="Al", email="al@x.test", practitioner_ids=("dr",))),
        "POST", "/api/v1/assistants", {}, {"Name": "Al", "Email": "al@x.test", "PractitionerIds": ["dr"]},
        ASSISTANT_JSON,
    ),
    "update_assistant": (
        v1(lambda c: c.assistants.update("a1", practitioner_ids=[], last_name="Ek", current=READ_ASSISTANT)),
        "PUT", "/api/v1/assistants", {},
        {"Id": "a1", "Name": "Al", "LastName": "Ek", "ExternalAssistantId": "al", "PractitionerIds": []},
        ASSISTANT_JSON,
    ),
    "list_assistants": (
        v1(lambda c: c.assistants.list()), "GET", "/api/v1/assistants", {"page": "1"}, None, [ASSISTANT_JSON],
    ),
    "delete_assistant": (
        v1(lambda c: c.assistants.delete("a1")), "DELETE", "/api/v1/assistants/a1", {}, None, None,
    ),
    "create_intake": (
        v1(lambda c: c.intakes.create(questionnaire_id="q1", client_name="Dex", client_email="d@x.test")),
        "POST", "/api/v1/intakes/create", {}, {"QuestionnaireId": "q1", "ClientName": "Dex", "ClientEmail": "d@x.test"},
        INTAKE_JSON,
    ),
    "create_intake_token": (
        v1(lambda c: c.intakes.create_token("i1")), "POST", "/api/v1/intakes/i1/token", {}, None, TOKEN_JSON,
    ),
}  # fmt: skip


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def partner() -> AsyncIterator[PartnerClient]:
    async with PartnerClient(PARTNER, base_url=BASE, initial_delay=0.0, max_delay=0.0) as client:
        yield client


def sent(route: respx.Route) -> httpx.Request:
    request: httpx.Request = route.calls.last.request
    return request


def test_the_cases_cover_every_operation_of_the_spec() -> None:
    operations = {name.removesuffix("_filtered").removesuffix("_active") for name in CASES}
    assert sorted(set(spec.operations(spec.load())) - operations) == []


@pytest.mark.parametrize("name", list(CASES))
async def test_each_operation_sends_the_documented_request_with_the_right_key(
    name: str, router: respx.MockRouter, partner: PartnerClient
) -> None:
    call, method, path, query, body, answer = CASES[name]
    key_route = router.get("/api/partner/practice/P1/key").mock(
        return_value=httpx.Response(200, json={"ApiKey": PRACTICE})
    )
    route = router.route(method=method, path__regex=r"^/api/(partner/(?!practice/P1/key$)|v1/).*").mock(
        return_value=httpx.Response(200, json=answer) if answer is not None else httpx.Response(200)
    )
    if name == "get_practice_api_key":
        route = key_route  # the key endpoint is itself one of the operations
    result = await call(partner)

    request = sent(route)
    assert route.call_count == 1
    assert request.url.raw_path.split(b"?")[0].decode() == path
    assert dict(request.url.params) == query
    assert (json.loads(request.content) if request.content else None) == body
    scope_key = PRACTICE if path.startswith("/api/v1/") else PARTNER
    assert request.headers["X-Auth-Key"] == scope_key
    if path.startswith("/api/v1/"):
        assert key_route.call_count == 1 and sent(key_route).headers["X-Auth-Key"] == PARTNER
    else:
        assert key_route.call_count == (1 if name == "get_practice_api_key" else 0)
    if answer is None:
        assert result is None
    elif name == "list_practices_filtered":
        assert result.id == "P1"
    elif isinstance(answer, list):
        assert [item.id for item in result] == [answer[0]["Id"]]
    elif name == "get_practice_api_key":
        assert result == PRACTICE
    elif name == "create_intake_token":
        assert isinstance(result, FormToken) and result.url_with_auth().endswith("?auth=t0k")
    else:
        assert getattr(result, "id", getattr(result, "token", None)) in (answer.get("Id"), answer.get("Token"))


async def test_a_practice_client_with_its_own_key_sends_only_that_key(router: respx.MockRouter) -> None:
    route = router.get("/api/v1/assistants").mock(return_value=httpx.Response(200, json=[]))
    async with PracticeClient(PRACTICE, base_url=BASE) as client:
        assert await client.assistants.list() == []
    assert sent(route).headers["X-Auth-Key"] == PRACTICE


async def test_an_operation_of_the_other_key_scope_is_refused_before_sending(router: respx.MockRouter) -> None:
    """The seam itself holds the key policy: a partner operation handed to a practice client's sender (or the
    reverse) is a typed error naming both scopes, and nothing is sent."""
    async with PartnerClient(PARTNER, base_url=BASE) as partner, PracticeClient(PRACTICE, base_url=BASE) as own:
        with pytest.raises(InvalidRequestError, match="needs the partner key") as caught:
            await list_practices.asyncio(own._sender)
        assert PRACTICE not in str(caught.value)
        with pytest.raises(InvalidRequestError, match="needs the practice key"):
            await list_assistants.asyncio(partner._sender)
    assert not router.calls


async def test_keys_and_base_url_can_come_from_the_environment(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKEQ_PARTNER_KEY", PARTNER)
    monkeypatch.setenv("INTAKEQ_PRACTICE_KEY", PRACTICE)
    monkeypatch.setenv("INTAKEQ_BASE_URL", BASE)
    forms = router.get("/api/partner/masterForms").mock(return_value=httpx.Response(200, json=[]))
    people = router.get("/api/v1/practitioners").mock(return_value=httpx.Response(200, json=[]))
    async with PartnerClient() as partner, PracticeClient() as practice:
        await partner.forms.master()
        await practice.practitioners.list()
    assert sent(forms).headers["X-Auth-Key"] == PARTNER and sent(people).headers["X-Auth-Key"] == PRACTICE


def test_a_missing_key_is_refused_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTAKEQ_PARTNER_KEY", raising=False)
    monkeypatch.delenv("INTAKEQ_PRACTICE_KEY", raising=False)
    with pytest.raises(InvalidRequestError, match="INTAKEQ_PARTNER_KEY"):
        PartnerClient()
    with pytest.raises(InvalidRequestError, match="INTAKEQ_PRACTICE_KEY"):
        PracticeClient()


@pytest.mark.parametrize("key", ["key\n", "key with space", "kéy", "key\r\nX-Evil: 1"])
def test_a_key_that_cannot_go_in_a_header_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PartnerClient(key, base_url=BASE)
    assert "key" not in str(caught.value).replace("API key", "")


@pytest.mark.parametrize(
    "url", ["http://intakeq.com", "http://10.0.0.1:8000", "ftp://intakeq.com", "https://user:pw@intakeq.com"]
)
def test_a_base_url_that_is_not_https_is_refused_unless_loopback(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidRequestError, match="base_url"):
        PartnerClient(PARTNER, base_url=url)
    with pytest.raises(InvalidRequestError, match="base_url"):
        PracticeClient(PRACTICE, base_url=url)
    monkeypatch.setenv("INTAKEQ_BASE_URL", url)
    with pytest.raises(InvalidRequestError, match="base_url"):
        PartnerClient(PARTNER)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:8765", BASE + "/"])
async def test_loopback_http_and_any_https_base_url_are_accepted(url: str) -> None:
    async with PartnerClient(PARTNER, base_url=url) as partner:
        assert partner.base_url == url.rstrip("/")


# ----- the practice-key cache


async def test_a_hundred_concurrent_first_calls_for_one_practice_fetch_its_key_once(
    router: respx.MockRouter, partner: PartnerClient
) -> None:
    key_route = router.get("/api/partner/practice/P1/key").mock(
        return_value=httpx.Response(200, json={"ApiKey": PRACTICE})
    )
    router.get("/api/v1/assistants").mock(return_value=httpx.Response(200, json=[]))
    await asyncio.gather(*(partner.practice("P1").assistants.list() for _ in range(100)))
    assert key_route.call_count == 1


async def test_a_refused_cached_key_is_fetched_again_and_the_call_retried_once(
    router: respx.MockRouter, partner: PartnerClient
) -> None:
    keys = iter(["old-key", "new-key", "newer-key"])
    key_route = router.get("/api/partner/practice/P1/key").mock(
        side_effect=lambda request: httpx.Response(200, json={"ApiKey": next(keys)})
    )
    refused = {"old-key"}
    v1 = router.get("/api/v1/assistants").mock(
        side_effect=lambda request: httpx.Response(401 if request.headers["X-Auth-Key"] in refused else 200, json=[])
    )
    practice = partner.practice("P1")
    # A key refused on its first use (revoked between the fetch and the call): fetched again once, call retried.
    assert await practice.assistants.list() == []
    assert key_route.call_count == 2 and v1.call_count == 2
    assert await practice.assistants.list() == [] and key_route.call_count == 2  # the new key is cached

    refused.add("new-key")  # the cached key is refused later: fetched again, call retried
    assert await practice.assistants.list() == []
    assert key_route.call_count == 3 and v1.call_count == 5
    assert [c.request.headers["X-Auth-Key"] for c in v1.calls] == [
        "old-key",
        "new-key",
        "new-key",
        "new-key",
        "newer-key",
    ]
    assert await practice.assistants.list() == [] and key_route.call_count == 3


# ----- retries the facade makes (delays themselves are covered in test_transport)


@pytest.mark.parametrize(
    "retry_after",
    ["0", format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)],
    ids=["seconds", "http-date-in-the-past"],
)
async def test_a_429_with_a_short_retry_after_is_retried_even_for_a_post(
    router: respx.MockRouter, partner: PartnerClient, retry_after: str
) -> None:
    route = router.post("/api/partner/practice").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": retry_after}), httpx.Response(200, json=PRACTICE_JSON)]
    )
    practice = await partner.practices.create(**NAMES)
    assert practice.id == "P1" and route.call_count == 2


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
async def test_a_429_asking_for_a_long_wait_is_raised_at_once_with_the_wait(
    router: respx.MockRouter, partner: PartnerClient, as_date: bool
) -> None:
    # The date is made when the test runs, not when it is collected: a test can run minutes after collection
    # (in parallel runs, a worker takes it late), and an hour ahead at collection is then less than 59 minutes.
    seconds = 3600.0 if as_date else 600.0
    retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True) if as_date else "600"
    route = router.get("/api/partner/masterForms").mock(
        return_value=httpx.Response(429, headers={"Retry-After": retry_after})
    )
    with pytest.raises(RateLimitError) as caught:
        await partner.forms.master()
    assert route.call_count == 1
    assert caught.value.retry_after is not None and abs(caught.value.retry_after - seconds) < 60


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadError("reset"), httpx.ReadTimeout("slow"), httpx.Response(502)],
    ids=["read", "timeout", "502"],
)
async def test_a_create_without_external_id_is_not_resent_when_it_may_have_arrived(
    router: respx.MockRouter, partner: PartnerClient, failure: Any
) -> None:
    router.get("/api/partner/practice/P1/key").mock(return_value=httpx.Response(200, json={"ApiKey": PRACTICE}))
    route = router.post("/api/v1/intakes/create").mock(side_effect=[failure, httpx.Response(200, json=INTAKE_JSON)])
    with pytest.raises((APIConnectionError, ServerError)):
        await partner.practice("P1").intakes.create(questionnaire_id="q", client_id=1)
    assert route.call_count == 1


async def test_a_create_with_external_id_looks_it_up_after_an_ambiguous_failure(
    router: respx.MockRouter, partner: PartnerClient
) -> None:
    create = router.post("/api/partner/practice").mock(side_effect=httpx.ReadError("reset"))
    lookup = router.get("/api/partner/practice", params={"externalPracticeId": "e1"}).mock(
        return_value=httpx.Response(200, json=[{**PRACTICE_JSON, "ExternalPracticeId": "e1"}])
    )
    practice = await partner.practices.create(**NAMES, external_practice_id="e1")
    assert practice.external_practice_id == "e1"
    assert create.call_count == 1 and lookup.call_count == 1


async def test_a_create_with_external_id_is_posted_again_when_the_lookup_finds_nothing(
    router: respx.MockRouter, partner: PartnerClient
) -> None:
    create = router.post("/api/partner/practice").mock(
        side_effect=[httpx.Response(502), httpx.Response(200, json=PRACTICE_JSON)]
    )
    lookup = router.get("/api/partner/practice").mock(return_value=httpx.Response(200, json=[]))
    assert (await partner.practices.create(**NAMES, external_practice_id="e1")).id == "P1"
    assert create.call_count == 2 and lookup.call_count == 1


async def test_a_conflict_on_a_first_create_is_looked_up_and_stands_when_no_practice_holds_the_id(
    router: respx.MockRouter, partner: PartnerClient
) -> None:
    router.post("/api/partner/practice").mock(return_value=httpx.Response(409, json={"Message": "in use"}))
    lookup = router.get("/api/partner/practice").mock(return_value=httpx.Response(200, json=[]))
    with pytest.raises(ConflictError, match="in use") as caught:
        await partner.practices.create(**NAMES, external_practice_id="e1")
    assert lookup.call_count == 1 and caught.value.existing is None


async def test_a_conflict_on_a_first_create_returns_the_practice_holding_the_id_when_it_is_the_same(
    router: respx.MockRouter, partner: PartnerClient
) -> None:
    router.post("/api/partner/practice").mock(return_value=httpx.Response(409, json={"Message": "in use"}))
    same = {**PRACTICE_JSON, **NAMES_WIRE, "Email": "JO@x.test", "ExternalPracticeId": "e1"}
    router.get("/api/partner/practice").mock(return_value=httpx.Response(200, json=[same]))
    assert (await partner.practices.create(**NAMES, external_practice_id="e1")).id == "P1"


# ----- errors


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(400, json={"Message": "Email is required."}), BadRequestError),
        (httpx.Response(422, json={"Message": "bad"}), BadRequestError),
        (httpx.Response(401, json={"Message": "denied"}), AuthenticationError),
        (httpx.Response(403, json={"Message": "forbidden"}), PermissionDeniedError),
        (httpx.Response(404, json={"Message": "Practice not found."}), NotFoundError),
        (httpx.Response(409, json={"Message": "in use"}), ConflictError),
        (httpx.Response(429, json={"Message": "slow down"}), RateLimitError),
        (httpx.Response(500, json={"Message": "An error has occurred."}), ServerError),
        (httpx.Response(503, text="<html>down</html>"), ServerError),
        (httpx.Response(418, text="teapot"), APIStatusError),
        (httpx.ConnectError("refused"), APIConnectionError),
        (httpx.ReadTimeout("slow"), APITimeoutError),
        (httpx.Response(200, text="<html>maintenance</html>"), ResponseValidationError),
        (httpx.Response(200, json={"NoId": True}), ResponseValidationError),
    ],
    ids=lambda v: str(getattr(v, "status_code", "")) or type(v).__name__,
)
async def test_each_failure_reaches_the_caller_as_its_error_class(
    router: respx.MockRouter, answer: Any, error: type[IntakeQError]
) -> None:
    route = router.delete("/api/partner/practice/P1").mock(side_effect=[answer])
    router.get("/api/partner/practice/P1/key").mock(side_effect=[answer])
    async with PartnerClient(PARTNER, base_url=BASE, max_retries=0) as partner:
        with pytest.raises(error) as caught:
            if error is ResponseValidationError:
                await partner.practices.api_key("P1")
            else:
                await partner.practices.delete("P1")
    exc = caught.value
    assert type(exc) is error
    assert exc.path.startswith("/api/partner/practice/P1")  # type: ignore[attr-defined]
    if isinstance(exc, APIStatusError) and answer.headers.get("content-type") == "application/json":
        assert exc.message == answer.json()["Message"] and exc.message is not None and exc.message in str(exc)
    if error is not ResponseValidationError:
        assert route.call_count == 1


@pytest.mark.parametrize(
    "body",
    [{"apiKey": PRACTICE}, PRACTICE, [PRACTICE], {"ApiKey": PRACTICE + "\n"}, {"ApiKey": ""}],
    ids=["camel-case", "bare-string", "array", "trailing-newline", "empty"],
)
async def test_a_practice_key_answer_of_the_wrong_shape_is_a_validation_error_that_holds_no_key(
    router: respx.MockRouter, partner: PartnerClient, body: Any
) -> None:
    router.get("/api/partner/practice/P1/key").mock(return_value=httpx.Response(200, json=body))
    v1 = router.get("/api/v1/assistants").mock(return_value=httpx.Response(200, json=[]))
    for call in (partner.practices.api_key("P1"), partner.practice("P1").assistants.list()):
        with pytest.raises(ResponseValidationError) as caught:
            await call
        exc = caught.value
        assert exc.path == "/api/partner/practice/P1/key"
        for text in (str(exc), repr(exc), repr(vars(exc))):
            assert PRACTICE not in text
    assert v1.call_count == 0


async def test_a_404_on_delete_is_fine_with_missing_ok(router: respx.MockRouter, partner: PartnerClient) -> None:
    router.delete(path__startswith="/api/").mock(return_value=httpx.Response(404, json={"Message": "gone"}))
    router.get("/api/partner/practice/P1/key").mock(return_value=httpx.Response(200, json={"ApiKey": PRACTICE}))
    await partner.practices.delete("P1", missing_ok=True)
    await partner.practice("P1").practitioners.delete("dr", missing_ok=True)
    await partner.practice("P1").assistants.delete("al", missing_ok=True)
    with pytest.raises(NotFoundError):
        await partner.practice("P1").assistants.delete("al")


async def test_get_returns_none_when_nothing_matches(router: respx.MockRouter, partner: PartnerClient) -> None:
    router.get("/api/partner/practice/P1/key").mock(return_value=httpx.Response(200, json={"ApiKey": PRACTICE}))
    router.get("/api/partner/practice").mock(return_value=httpx.Response(200, json=[]))
    router.get("/api/v1/practitioners").mock(return_value=httpx.Response(200, json=[PRACTITIONER_JSON]))
    router.get("/api/v1/assistants").mock(return_value=httpx.Response(200, json=[ASSISTANT_JSON]))
    assert await partner.practices.get(email="nobody@x.test") is None
    v1 = partner.practice("P1")
    assert await v1.practitioners.get("nobody") is None
    assert (await v1.practitioners.get("dr")) is not None  # by external ID
    assert (await v1.assistants.get("a1")) is not None and await v1.assistants.get("zz") is None


# ----- invalid arguments fail before any request, naming the argument


INVALID: dict[str, tuple[Call, str]] = {
    "practice update with neither id": (
        lambda p: p.practices.update(**NAMES), "name the practice to update first",
    ),
    "practice get with two filters": (
        lambda p: p.practices.get("P1", email="a@x.test"), r"exactly one of: ref \(an Id or external ID\), email",
    ),
    "practice get with nothing": (lambda p: p.practices.get(), r"exactly one of: ref \(an Id or external ID\), email"),
    "practitioner update with neither id": (
        v1(lambda c: c.practitioners.update(first_name="A")), "name the practitioner to update first",
    ),
    "assistant update with neither id": (
        v1(lambda c: c.assistants.update(name="A")), "name the assistant to update first",
    ),
    "intake with no client": (
        v1(lambda c: c.intakes.create(questionnaire_id="q")), r"without ClientId \(client_id\), IntakeQ needs",
    ),
    "intake client id as text": (
        v1(lambda c: c.intakes.create(questionnaire_id="q", client_id="7")), "client_id must be an int, not str",  # type: ignore[arg-type]
    ),
    "intake client id as bool": (
        v1(lambda c: c.intakes.create(questionnaire_id="q", client_id=True)), "client_id must be an int, not bool",
    ),
    "intake client id zero": (
        v1(lambda c: c.intakes.create(questionnaire_id="q", client_id=0)), "client_id must be a positive 64-bit int",
    ),
    "empty practice ref": (lambda p: p.practices.delete(""), "practice must not be empty"),
    "blank practice ref": (lambda p: p.practices.api_key("  "), "practice must not be empty"),
    "blank practice client ref": (lambda p: p.practice(" \t").assistants.list(), "practice must not be empty"),
    "practice ref as int": (lambda p: p.forms.list(7), "practice must be a string, not int"),  # type: ignore[arg-type]
    "empty user id": (lambda p: p.practices.ephemeral_token("P1", user_id=""), "user_id must not be empty"),
    "empty practitioner": (v1(lambda c: c.practitioners.disable("")), "practitioner must not be empty"),
    "empty transfer destination": (
        v1(lambda c: c.practitioners.transfer_data(source="a", destination="")), "destination must not be",
    ),
    "empty assistant": (v1(lambda c: c.assistants.delete("")), "assistant must not be empty"),
    "empty intake id": (v1(lambda c: c.intakes.create_token("")), "intake_id must not be empty"),
    "missing practice name": (
        lambda p: p.practices.create(**{**NAMES, "practice_name": None}),
        "practice_name must be a string, not NoneType",
    ),
    "blank email": (lambda p: p.practices.create(**{**NAMES, "email": " "}), "email must not be empty"),
    "city as int": (lambda p: p.practices.create(**NAMES, city=10001), "city must be a string, not int"),  # type: ignore[arg-type]
    "flag as int": (lambda p: p.practices.create(**NAMES, forms_enabled=1), "forms_enabled must be True or False"),  # type: ignore[arg-type]
    "flag as text": (
        lambda p: p.forms.copy(source_master_form_id="f", practice="P1", copy_attached_consent_forms="yes"),  # type: ignore[arg-type]
        "copy_attached_consent_forms must be True or False",
    ),
    "include_inactive as text": (
        v1(lambda c: c.practitioners.list(include_inactive="true")), "include_inactive must be True or False",  # type: ignore[arg-type]
    ),
    "page zero": (lambda p: p.practices.list(page=0), "page must be an int >= 1"),
    "page as text": (lambda p: p.practices.list(page="2"), "page must be an int >= 1"),  # type: ignore[arg-type]
    "page as bool": (lambda p: p.practices.list(page=True), "page must be an int >= 1"),
    "practitioner ids as a string": (
        v1(lambda c: c.assistants.create(name="A", email="a@x.test", practitioner_ids="dr")),
        "practitioner_ids must be a list of IDs, not str",
    ),
    "practitioner ids as an int": (
        v1(lambda c: c.assistants.create(name="A", email="a@x.test", practitioner_ids=3)),  # type: ignore[arg-type]
        "practitioner_ids must be a list of IDs, not int",
    ),
    "a blank practitioner id": (
        v1(lambda c: c.assistants.update("a1", practitioner_ids=["dr", " "])), r"practitioner_ids\[1\] must not be",
    ),
    "a lone surrogate": (lambda p: p.practices.delete("a\ud800"), "practice is not valid text"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(INVALID))
async def test_invalid_arguments_fail_before_any_request_naming_the_argument(
    name: str, router: respx.MockRouter, partner: PartnerClient
) -> None:
    call, message = INVALID[name]
    anything = router.route().mock(return_value=httpx.Response(200, json={"ApiKey": PRACTICE}))
    with pytest.raises(InvalidRequestError, match=message):
        await call(partner)
    assert anything.call_count == 0
