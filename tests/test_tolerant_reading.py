"""The tolerant reader: a field that does not fit its declared type never fails a call (the value is kept in
`additional_properties`, one warning per model and field names them, never the value), fields the next step
needs stay strict, and `strict_responses=True` (what tests run with by default) fails as before."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
import pytest
from conftest import FAST, STACKS
from rawservers import by_path, respond, serve

from intakeq_partner import PartnerClient, ResponseValidationError, to_dict
from intakeq_partner._constants import STRICT_RESPONSES_ENV
from intakeq_partner._generated import models
from intakeq_partner._generated.models import Assistant, Intake, IntakeToken, Practice, PracticeApiKey
from intakeq_partner._wire import _warned, decode_response, merge_update, structure

PARTNER_KEY = "tolerant-partner-key-7e11a"
WIRE_LOGGER = "intakeq_partner.responses"

# Each kind of surprise: (model, well-formed rest of the object, wire name, value that does not fit, attribute).
SURPRISES = [
    pytest.param(Practice, {"Id": "p"}, "City", True, "city", id="bool-for-string"),
    pytest.param(Intake, {"Id": "i"}, "ClientId", "123", "client_id", id="number-as-string"),
    pytest.param(Intake, {"Id": "i"}, "Questions", {"Id": "q"}, "questions", id="object-for-list"),
    pytest.param(Assistant, {"Id": "a"}, "PractitionerIds", ["u1", 5], "practitioner_ids", id="list-one-bad-string"),
    pytest.param(Intake, {"Id": "i"}, "Questions", [{"Id": "q"}, "q2"], "questions", id="list-one-bad-object"),
    pytest.param(Intake, {"Id": "i"}, "ConsentForms", [{"Name": "no Id"}], "consent_forms", id="nested-required"),
    pytest.param(Practice, {"Id": "p"}, "DateCreated", "yesterday", "date_created", id="unreadable-timestamp"),
    pytest.param(Practice, {"Id": "p"}, "FormsEnabled", "false", "forms_enabled", id="bool-as-string"),
]


def answer(body: Any) -> httpx.Response:
    return httpx.Response(200, json=body, request=httpx.Request("GET", "https://x.test/api/partner/practice"))


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    """Each test sees its own first warnings (the process-wide memory of what was said is reset)."""
    _warned.clear()


@pytest.mark.parametrize(("model", "rest", "wire", "value", "attr"), SURPRISES)
def test_tolerant_a_field_that_does_not_fit_is_kept_as_received_and_the_rest_decodes(
    model: type, rest: dict[str, Any], wire: str, value: Any, attr: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = {**rest, wire: value, "Email": "ann@example.com"} if model is Practice else {**rest, wire: value}
    with caplog.at_level(logging.WARNING, logger=WIRE_LOGGER):
        decoded = decode_response(answer(body), "GET", "/x", model, False, strict=False)
        again = decode_response(answer([body, body]), "GET", "/x", model, True, strict=False)
    assert getattr(decoded, attr) is None
    assert decoded.additional_properties[wire] == value
    assert all(getattr(o, attr) is None and o.additional_properties[wire] == value for o in again)
    assert decoded.id == rest["Id"]  # the rest of the object decoded
    if model is Practice:
        assert decoded.email == "ann@example.com"
    # One warning for the three decodes, naming model and field, never the value.
    [record] = [r for r in caplog.records if r.name == WIRE_LOGGER]
    message = record.getMessage()
    assert message.startswith(f"{model.__name__}.{wire} does not fit its declared type (")
    told = message.split(")")[0]  # the model, the field and what was wrong; the rest is fixed text
    assert repr(value) not in told and str(value) not in told.replace(wire, "")
    # What was received goes back out unchanged in the wire form (a replay, or an update's body).
    assert to_dict(decoded, names="wire")[wire] == value


@pytest.mark.parametrize(("model", "rest", "wire", "value", "attr"), SURPRISES)
def test_strict_the_same_surprise_fails_the_call_saying_what_without_the_value(
    model: type, rest: dict[str, Any], wire: str, value: Any, attr: str
) -> None:
    with pytest.raises(ResponseValidationError) as caught:
        decode_response(answer({**rest, wire: value}), "GET", "/x", model, False, strict=True)
    reason = caught.value.reason
    assert ("expected" in reason or "missing" in reason or "timestamp" in reason) and repr(value) not in reason


@pytest.mark.parametrize(
    ("model", "body"),
    [
        pytest.param(Practice, {"PracticeName": "no Id"}, id="missing-id"),
        pytest.param(Practice, {"Id": 7}, id="numeric-id"),
        pytest.param(PracticeApiKey, {"ApiKey": 12345}, id="numeric-api-key"),
        pytest.param(IntakeToken, {"Token": None, "Url": "u", "Expiration": 1}, id="null-token"),
        pytest.param(Intake, {"Id": ["i"]}, id="list-id"),
        pytest.param(Practice, ["not an object"], id="wrong-shape"),
    ],
)
def test_what_the_next_step_needs_stays_strict_in_the_tolerant_reading(model: type, body: Any) -> None:
    with pytest.raises(ResponseValidationError):
        decode_response(answer(body), "GET", "/x", model, False, strict=False)


def test_a_nested_surprise_stays_in_the_nested_object() -> None:
    body = {"Id": "i", "Questions": [{"Id": "q", "OfficeUse": "yes", "Text": "How are you?"}]}
    intake = structure(Intake, body, strict=False)
    assert intake.questions is not None
    [question] = intake.questions
    assert question.office_use is None and question.additional_properties == {"OfficeUse": "yes"}
    assert question.text == "How are you?"


def test_a_credential_kept_as_received_stays_out_of_logs_and_of_credential_free_dicts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=WIRE_LOGGER):
        intake = structure(Intake, {"Id": "i", "Password": 3458351}, strict=False)
    assert intake.password is None and intake.additional_properties["Password"] == 3458351
    assert "3458351" not in caplog.text and "3458351" not in repr(intake)
    assert "Password" not in to_dict(intake, names="wire", credentials=False)


def test_an_update_sends_back_a_value_the_read_kept_as_received() -> None:
    current = structure(models.Practitioner, {"Id": "u1", "FirstName": "Ann", "Email": 5}, strict=False)
    merged = merge_update(models.PractitionerUpdate, current, {"last_name": "Lee"})
    assert merged.additional_properties["Email"] == 5
    assert (merged.first_name, merged.last_name) == ("Ann", "Lee")


def test_tests_run_strict_by_default_through_the_pytest_plugin() -> None:
    import os

    assert os.environ.get(STRICT_RESPONSES_ENV) == "1"
    assert PartnerClient(PARTNER_KEY, base_url="http://127.0.0.1:9")._transport.strict_responses is True
    assert (
        PartnerClient(PARTNER_KEY, base_url="http://127.0.0.1:9", strict_responses=False)._transport.strict_responses
        is False
    )


# ----- end to end, both stacks: a surprising answer over a real socket


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("strict", [False, True], ids=["tolerant", "strict"])
async def test_a_surprising_answer_over_the_wire(stack: str, strict: bool, caplog: pytest.LogCaptureFixture) -> None:
    listed = [
        {"Id": "p1", "PracticeName": "A", "City": True, "DateCreated": 1744432686643.7417},
        {"Id": "p2", "PracticeName": "B", "BookingEnabled": "no", "Plan": {"Tier": 2}},
        {"Id": "p3", "PracticeName": "C", "PostalCode": 1234, "State": ["OR"], "DateCreated": "last week"},
    ]
    routes = {("GET", "/api/partner/practice"): respond(200, listed)}
    async with serve(by_path(routes)) as server:
        options: dict[str, Any] = {**FAST, "http_stack": stack, "strict_responses": strict}
        async with PartnerClient(PARTNER_KEY, base_url=server.base_url, **options) as partner:
            if strict:
                with pytest.raises(ResponseValidationError, match=r"Practice\.City: expected a string, got bool"):
                    await partner.practices.list(page=1)
                return
            with caplog.at_level(logging.WARNING, logger=WIRE_LOGGER):
                p1, p2, p3 = await partner.practices.list(page=1)
    assert (p1.city, p1.additional_properties, p1.practice_name) == (None, {"City": True}, "A")
    assert p1.date_created is not None and p1.date_created.microsecond == 643742
    assert (p2.booking_enabled, p2.additional_properties) == (None, {"BookingEnabled": "no", "Plan": {"Tier": 2}})
    assert (p3.postal_code, p3.state, p3.date_created, p3.practice_name) == (None, None, None, "C")
    assert p3.additional_properties == {"PostalCode": 1234, "State": ["OR"], "DateCreated": "last week"}
    warned = sorted(r.getMessage().split(" ")[0] for r in caplog.records if r.name == WIRE_LOGGER)
    expected = ["BookingEnabled", "City", "DateCreated", "PostalCode", "State"]
    assert warned == [f"Practice.{field}" for field in expected]


@pytest.mark.parametrize("stack", STACKS)
async def test_every_timestamp_form_over_the_wire_strictly(stack: str) -> None:
    """Each timestamp form seen in recordings, over a real socket on each HTTP stack, read strictly."""
    forms = [
        1744432686643.7417,  # float milliseconds with a fraction, as recorded
        1744432686643.0,  # a whole float
        1744432686643,  # an integer
        "2025-04-12T04:38:06.6437417Z",  # seven fractional digits
        "2025-04-12T06:38:06.643742+02:00",  # an offset
        "2025-04-12T04:38:06.643742",  # no offset: UTC
    ]
    listed = [{"Id": f"p{i}", "DateCreated": form} for i, form in enumerate(forms)] + [
        {"Id": "none", "DateCreated": None}
    ]
    routes = {("GET", "/api/partner/practice"): respond(200, listed)}
    async with serve(by_path(routes)) as server:
        options: dict[str, Any] = {**FAST, "http_stack": stack, "strict_responses": True}
        async with PartnerClient(PARTNER_KEY, base_url=server.base_url, **options) as partner:
            practices = await partner.practices.list(page=1)
    exact = dt.datetime(2025, 4, 12, 4, 38, 6, 643742, tzinfo=dt.UTC)
    whole = exact.replace(microsecond=643000)
    assert [p.date_created for p in practices] == [exact, whole, whole, exact, exact, exact, None]
