"""Hardening: keys stay on their own endpoints and out of every text; hostile input and answers stay typed."""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import respx
from conftest import FAST, STACKS, Env, practice_fields, touch_every_operation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intakeq_partner import (
    FormTemplate,
    IntakeQError,
    InvalidRequestError,
    PartnerClient,
    PracticeClient,
    ResponseValidationError,
)
from intakeq_partner.testing import FakeIntakeQ, Faults

pytestmark = pytest.mark.usefixtures("httpx_stack")  # respx mocks httpx's transports only

BASE = "https://intakeq.test"
HYPOTHESIS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----- key isolation on the wire


async def test_each_key_reaches_only_the_endpoints_of_its_own_scope_and_practice() -> None:
    fake = FakeIntakeQ(PARTNER_MARK := "partner-" + secrets.token_hex(8), seed=3)
    async with PartnerClient(PARTNER_MARK, base_url=fake.base_url, transport=fake.transport()) as partner:
        for tag in ("a", "b", "c"):
            start = len(fake.requests)
            practice = await touch_every_operation(partner, fake, tag)
            for record in fake.requests[start:]:
                if record.raw_path.startswith("/api/partner/"):
                    assert record.auth == "partner", record
                else:
                    assert record.raw_path.startswith("/api/v1/") and record.auth == f"practice:{practice.id}", record
    assert {r.route for r in fake.requests} >= {"/api/v1/practitioners", "/api/partner/practice"}
    assert all(r.status == 200 for r in fake.requests)


# ----- no secret leaks


async def test_no_key_appears_in_logs_reprs_or_errors_on_any_path(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # root: every library's records, httpx and httpcore included
    fake = env.fake
    marker = "MARK" + secrets.token_hex(12)
    texts: list[str] = []
    errors: list[BaseException] = []

    async def attempt(call: Awaitable[Any]) -> Any:
        try:
            result = await call
        except IntakeQError as exc:
            errors.append(exc)
            return None
        texts.extend([repr(result), str(result)])
        return result

    async with env.client(marker, max_retries=1, timeout=0.2) as partner:
        fake.partner_key = marker  # the fake now accepts the marker as the partner key
        practice = await partner.practices.create(**practice_fields("m"), external_practice_id="m")
        v1 = partner.practice(practice.id)
        await attempt(v1.practitioners.list())
        old_key = fake.practice_key(practice.id)
        fake.rotate_practice_key(practice.id)  # the cached key is refused once (401) and refreshed
        await attempt(v1.practitioners.create(first_name="A", last_name="B", email="a@x.test"))
        await attempt(v1.practitioners.create(first_name="A", last_name="B", email="a@x.test", role_name="Nope"))
        await attempt(partner.practices.create(**practice_fields("m"), external_practice_id="m"))  # 409
        await attempt(partner.practices.delete("nope"))  # 404
        await attempt(partner.practices.ephemeral_token(practice.id))
        for faults in (
            Faults(p429=1.0, retry_after=0),
            Faults(p5xx=1.0),
            Faults(p_drop=1.0),
            Faults(p_hang=1.0, hang_seconds=2.0),
            Faults(p_malformed=1.0),
        ):
            fake.faults = faults
            await attempt(partner.forms.master())
            await attempt(v1.assistants.create(name="A", email="a@x.test"))
        fake.faults = Faults()
        async with env.practice_client(old_key) as revoked:
            await attempt(revoked.assistants.list())  # 401 with a practice key
        texts.extend([repr(partner), str(partner), repr(vars(partner)), repr(v1), repr(vars(v1)), repr(revoked)])

    assert len(errors) >= 12
    for exc in errors:
        texts.extend([str(exc), repr(exc), repr(vars(exc)), "".join(traceback.format_exception(exc))])
    keys = {marker, old_key, *(fake.practice_key(p) for p in fake.practices)}
    for key in keys:
        assert key not in caplog.text
        for text in texts:
            assert key not in text
    assert any(r.name == "intakeq_partner" for r in caplog.records)


# ----- hostile input


HOSTILE_PIECES = ["/", "..", ".", "?", "#", "%", "%2F", " ", "é", "\u202e", "&", "=", "\\", "a", "\x00", ";"]
hostile_ids = st.one_of(
    st.sampled_from(["..", ".", "../..", "a/../../b", "?x=1", "#frag", "%2e%2e", "100%", "a b", "ü/ö"]),
    st.lists(st.sampled_from(HOSTILE_PIECES), min_size=1, max_size=6).map("".join),
    st.text(min_size=1, max_size=12),
).filter(lambda s: bool(s.strip()))

PATH_CALLS: list[tuple[str, Callable[[PartnerClient, str], Awaitable[Any]]]] = [
    ("/api/partner/practice/{}", lambda p, x: p.practices.delete(x)),
    ("/api/partner/practice/{}/key", lambda p, x: p.practices.api_key(x)),
    ("/api/partner/practice/{}/ephemeral", lambda p, x: p.practices.ephemeral_token(x, user_id=x)),
    ("/api/partner/practice/{}/forms", lambda p, x: p.forms.list(x)),
    ("/api/v1/practitioners/{}/disable", lambda p, x: p.practice("P1").practitioners.disable(x)),
    ("/api/v1/practitioners/{}/enable", lambda p, x: p.practice("P1").practitioners.enable(x)),
    ("/api/v1/practitioners/{}", lambda p, x: p.practice("P1").practitioners.delete(x)),
    (
        "/api/v1/practitioners/{}/transferData/{}",
        lambda p, x: p.practice("P1").practitioners.transfer_data(source=x, destination=x),
    ),
    (
        "/api/v1/practitioners/{}/transferClientOwnership/{}",
        lambda p, x: p.practice("P1").practitioners.transfer_client_ownership(source=x, destination=x),
    ),
    ("/api/v1/assistants/{}", lambda p, x: p.practice("P1").assistants.delete(x)),
    ("/api/v1/intakes/{}/token", lambda p, x: p.practice("P1").intakes.create_token(x)),
]


def answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/key"):
        return httpx.Response(200, json={"ApiKey": "practice-key"})
    if path.endswith("/ephemeral"):
        return httpx.Response(200, json={"Token": "t", "UserId": "u"})
    if path.endswith("/forms") or path in ("/api/v1/assistants", "/api/partner/practice"):
        return httpx.Response(200, json=[])
    if path.endswith("/token"):
        return httpx.Response(200, json={"Token": "t", "Url": "https://x.test/i", "Expiration": "2030-01-01T00:00:00Z"})
    return httpx.Response(200)


@HYPOTHESIS
@given(hostile=hostile_ids.filter(lambda s: s != "P1"))
def test_no_id_can_leave_its_path_segment(hostile: str) -> None:
    async def run() -> list[httpx.Request]:
        with respx.mock(assert_all_called=False) as router:
            route = router.route(host="intakeq.test").mock(side_effect=answer)
            async with PartnerClient("partner-key", base_url=BASE, max_retries=0) as partner:
                await partner.practice(hostile).assistants.list()  # the key fetch puts the ref in a path too
                for _, call in PATH_CALLS:
                    await call(partner, hostile)
                await partner.practices.get(hostile)
            return [c.request for c in route.calls]

    partner_calls = [t for t, _ in PATH_CALLS if t.startswith("/api/partner/")]
    v1_calls = [t for t, _ in PATH_CALLS if t.startswith("/api/v1/")]
    expected = [
        "/api/partner/practice/{}/key",
        "/api/v1/assistants",
        *partner_calls,
        "/api/partner/practice/P1/key",  # the key of the practice the v1 calls below go to
        *v1_calls,
        "/api/partner/practice",  # practices.get(ref): by Id,
        "/api/partner/practice",  # then by external ID
    ]
    requests = asyncio.run(run())
    assert len(requests) == len(expected)
    for template, request in zip(expected, requests, strict=True):
        raw = request.url.raw_path.decode("ascii")
        path, _, _ = raw.partition("?")
        segments = path.split("/")
        assert "#" not in raw and len(segments) == len(template.split("/")), (template, raw)
        for literal, segment in zip(template.split("/"), segments, strict=True):
            if literal == "{}":
                assert unquote(segment) == hostile and segment not in (".", "..") and "/" not in segment
            else:
                assert segment == literal, (template, raw)
        # Query values are the ID, or the page number a list walk adds.
        assert all(value == hostile for name, value in request.url.params.items() if name != "page")


blank = st.text(alphabet=" \t\n\r\u00a0\u2003\u3000", max_size=4)
not_text = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.binary(max_size=3), st.none())
ID_ARGS: list[tuple[str, Callable[[PartnerClient, Any], Awaitable[Any]]]] = [
    ("practice", lambda p, x: p.practices.delete(x)),
    ("practice", lambda p, x: p.practices.api_key(x)),
    ("practice", lambda p, x: p.forms.list(x)),
    ("practice", lambda p, x: p.practice(x).assistants.list()),
    ("practice", lambda p, x: p.forms.copy(source_master_form_id="f", practice=x)),
    ("practitioner", lambda p, x: p.practice("P1").practitioners.disable(x)),
    ("source", lambda p, x: p.practice("P1").practitioners.transfer_data(source=x, destination="b")),
    ("assistant", lambda p, x: p.practice("P1").assistants.delete(x)),
    ("intake_id", lambda p, x: p.practice("P1").intakes.create_token(x)),
    ("email", lambda p, x: p.practices.create(practice_name="P", first_name="A", last_name="B", email=x)),
    ("name", lambda p, x: p.practice("P1").assistants.create(name=x, email="a@x.test")),
    ("questionnaire_id", lambda p, x: p.practice("P1").intakes.create(questionnaire_id=x, client_id=1)),
]


@HYPOTHESIS
@given(value=st.one_of(blank, not_text))
def test_blank_or_non_text_arguments_fail_before_any_request(value: Any) -> None:
    async def run() -> int:
        with respx.mock(assert_all_called=False) as router:
            route = router.route().mock(side_effect=answer)
            async with PartnerClient("partner-key", base_url=BASE) as partner:
                for name, call in ID_ARGS:
                    with pytest.raises(InvalidRequestError, match=name):
                        await call(partner, value)
            return route.call_count

    assert asyncio.run(run()) == 0


# ----- hostile answers


HUGE = b"<html><body>" + b"x" * (5 * 1024 * 1024) + b"</body></html>"
ODD_ANSWERS: dict[str, httpx.Response] = {
    "missing Id": httpx.Response(200, json=[{"Name": "no id"}]),
    "Id of the wrong type": httpx.Response(200, json=[{"Id": 5}]),
    "Archived as a string": httpx.Response(200, json=[{"Id": "f", "Archived": "no"}]),
    "object instead of array": httpx.Response(200, json={"Id": "f"}),
    "array of numbers": httpx.Response(200, json=[1, 2]),
    "JSON null": httpx.Response(200, json=None),
    "empty body": httpx.Response(200),
    "HTML page with 200": httpx.Response(200, html="<html><body>Maintenance</body></html>"),
    "truncated JSON": httpx.Response(200, content=b'[{"Id": "f", "Na'),
    "5 MB of HTML with 200": httpx.Response(200, content=HUGE),
    "deeply nested JSON": httpx.Response(200, content=b"[" * 100_000),
    "bytes that are not UTF-8": httpx.Response(200, content=b'[{"Id": "\xff\xfe"}]'),
}


@pytest.mark.parametrize("name", list(ODD_ANSWERS))
async def test_a_malformed_success_answer_is_a_response_validation_error(name: str) -> None:
    with respx.mock(base_url=BASE) as router:
        route = router.get("/api/partner/masterForms").mock(return_value=ODD_ANSWERS[name])
        async with PartnerClient("partner-key", base_url=BASE, **FAST) as partner:
            with pytest.raises(ResponseValidationError) as caught:
                await partner.forms.master()
    assert len(caught.value.body_excerpt.encode()) <= 2048 and len(str(caught.value)) < 500
    assert route.call_count == 3  # a read is harmless to repeat: asked again twice before giving up


ODD_ERRORS: dict[str, httpx.Response] = {
    "5 MB HTML error page": httpx.Response(500, content=HUGE, headers={"Content-Type": "text/html"}),
    "5 MB JSON message": httpx.Response(400, json={"Message": "m" * (5 * 1024 * 1024)}),
    "HTML 404": httpx.Response(404, html="<h1>Not Found</h1>"),
    "empty 403": httpx.Response(403),
    "deeply nested JSON error": httpx.Response(500, content=b"[" * 100_000),
    "Message of the wrong type": httpx.Response(409, json={"Message": {"nested": True}}),
    "JSON array error": httpx.Response(400, json=["a"]),
    "bogus charset": httpx.Response(502, content=b"\xff bad", headers={"Content-Type": "text/plain; charset=nope"}),
    "redirect": httpx.Response(302, headers={"Location": "https://evil.test/steal"}),
}


@pytest.mark.parametrize("name", list(ODD_ERRORS))
async def test_an_odd_error_answer_is_still_a_typed_error_with_a_short_excerpt(name: str) -> None:
    with respx.mock(base_url=BASE) as router:
        route = router.post("/api/partner/practice").mock(return_value=ODD_ERRORS[name])
        async with PartnerClient("partner-key", base_url=BASE, **FAST) as partner:
            with pytest.raises(IntakeQError) as caught:
                await partner.practices.create(**practice_fields("odd"))
    exc: Any = caught.value
    assert exc.status_code == ODD_ERRORS[name].status_code and route.call_count == 1
    assert len(exc.body_excerpt.encode()) <= 2048 and len(str(exc)) <= 2048 + 200


async def test_a_garbled_compressed_body_is_a_connection_error_not_a_crash() -> None:
    garbled = httpx.Response(200, stream=httpx.ByteStream(b"not gzip"), headers={"Content-Encoding": "gzip"})
    with respx.mock(base_url=BASE) as router:
        route = router.get("/api/partner/masterForms").mock(return_value=garbled)
        async with PartnerClient("partner-key", base_url=BASE, max_retries=0) as partner:
            with pytest.raises(IntakeQError, match="undecodable"):
                await partner.forms.master()
    assert route.call_count == 1


async def test_unknown_fields_are_kept_and_unknown_enum_values_tolerated() -> None:
    form = {"Id": "f", "Type": "Survey", "Archived": None, "Brand": {"Color": "teal"}}
    with respx.mock(base_url=BASE) as router:
        router.get("/api/partner/masterForms").mock(return_value=httpx.Response(200, json=[form]))
        async with PartnerClient("partner-key", base_url=BASE) as partner:
            [found] = await partner.forms.master()
    assert isinstance(found, FormTemplate) and found.type == "Survey" and found.archived is None
    assert found.additional_properties == {"Brand": {"Color": "teal"}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(
    ["Id", "Token", "Url", "Expiration", "UserId", "Questions", "ConsentForms", "PractitionerIds", "DateCreated"]
)
shaped = st.dictionaries(field_names, json_values | st.text(max_size=8), max_size=6)
V1_ANSWERING: list[Callable[[PracticeClient], Awaitable[Any]]] = [
    lambda c: c.intakes.create_token("i1"),
    lambda c: c.intakes.create(questionnaire_id="q", client_id=1),
    lambda c: c.practitioners.list(),
    lambda c: c.assistants.create(name="A", email="a@x.test"),
]


@HYPOTHESIS
@given(body=st.one_of(json_values, shaped, st.lists(shaped, max_size=2)))
def test_any_json_answer_decodes_or_is_a_response_validation_error(body: Any) -> None:
    async def run() -> None:
        with respx.mock(base_url=BASE) as router:
            router.route().mock(return_value=httpx.Response(200, json=body))
            async with PracticeClient("practice-key", base_url=BASE, max_retries=0) as client:
                for call in V1_ANSWERING:
                    try:
                        await call(client)
                    except ResponseValidationError as exc:
                        assert len(exc.body_excerpt.encode()) <= 2048

    asyncio.run(run())


# ----- the fake, over loopback, with every fault at once


@pytest.mark.parametrize("stack", STACKS)
async def test_a_seeded_storm_of_faults_only_ever_raises_typed_errors(stack: str) -> None:
    faults = Faults(p429=0.1, p5xx=0.1, p_drop=0.1, p_malformed=0.1, retry_after=0)
    fake = FakeIntakeQ("storm-key", seed=8, faults=faults)
    outcomes: list[str] = []
    options: dict[str, Any] = {**FAST, "http_stack": stack}
    async with fake.serve() as base_url, PartnerClient("storm-key", base_url=base_url, **options) as partner:
        for n in range(30):
            try:
                await partner.practices.create(**practice_fields(str(n)), external_practice_id=f"s{n}")
                outcomes.append("ok")
            except IntakeQError as exc:
                outcomes.append(type(exc).__name__)
    assert "ok" in outcomes and sum(fake.stats.faults.values()) >= 10  # the storm really hit
    created = [p.external_id for p in fake.practices]
    assert len(created) == len(set(created))  # never a duplicate, whatever failed
