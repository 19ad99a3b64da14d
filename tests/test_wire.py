"""The wire rules: names, timestamps, unknown fields, open enums, and typed failures on bad shapes."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from intakeq_partner._errors import ResponseValidationError
from intakeq_partner._generated import models
from intakeq_partner._generated.models import (
    Assistant,
    ConsentForm,
    EphemeralToken,
    FormTemplate,
    Intake,
    IntakeToken,
    Practice,
    PracticeCreate,
    Practitioner,
)
from intakeq_partner._wire import WireError, decode_response, merge_update, structure, structure_list, unstructure


def test_pascal_case_fields_become_snake_case_attributes_with_aware_datetimes() -> None:
    practice = structure(Practice, {"Id": "P1", "PracticeName": "ABC", "DateCreated": "2024-05-01T10:00:00.000Z"})
    assert practice.practice_name == "ABC"
    assert practice.date_created == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    naive = structure(Practice, {"Id": "P1", "DateCreated": "2024-05-01T10:00:00"})
    assert naive.date_created is not None and naive.date_created.tzinfo is dt.UTC


def test_null_and_missing_optional_fields_are_both_none() -> None:
    assert structure(Practice, {"Id": "P1", "City": None}).city is None
    assert structure(Practice, {"Id": "P1"}).city is None


def test_unknown_fields_are_kept_and_sent_back() -> None:
    practice = structure(Practice, {"Id": "P1", "FieldFromTheFuture": "UTC", "Plan": {"Tier": 2}})
    assert practice.additional_properties == {"FieldFromTheFuture": "UTC", "Plan": {"Tier": 2}}
    body = PracticeCreate("A", "B", "C", "d@x.test")
    body.additional_properties["FieldFromTheFuture"] = "UTC"
    assert unstructure(body) == {"PracticeName": "A", "FirstName": "B", "LastName": "C", "Email": "d@x.test",
                                 "FieldFromTheFuture": "UTC"}  # fmt: skip


def test_a_new_enum_value_decodes() -> None:
    assert structure(FormTemplate, {"Id": "f", "Type": "Invoice"}).type == "Invoice"


def test_nested_models_decode_and_unix_milliseconds_become_datetimes() -> None:
    intake = structure(
        Intake,
        {
            "Id": "i",
            "DateCreated": 1458526480368,
            "DateSubmitted": None,
            "Questions": [{"Id": "q", "Rows": [{"Text": "r", "Answers": ["a"]}], "Attachments": [{"Id": "x"}]}],
            "ConsentForms": [{"Id": "c", "Signed": True}],
        },
    )
    assert intake.date_created == dt.datetime(2016, 3, 21, 2, 14, 40, 368000, tzinfo=dt.UTC)
    assert intake.date_submitted is None
    assert intake.questions is not None and intake.questions[0].rows is not None
    assert intake.questions[0].rows[0].answers == ["a"]
    assert intake.consent_forms is not None and intake.consent_forms[0].signed is True


MOMENT = dt.datetime(2024, 5, 28, 9, 30, 15, 123000, tzinfo=dt.UTC)
TIMESTAMP_FIELDS = [
    (Practice, "DateCreated", "date_created"),
    (Practitioner, "DateCreated", "date_created"),
    (Assistant, "DateCreated", "date_created"),
    (Intake, "DateCreated", "date_created"),
    (Intake, "DateSubmitted", "date_submitted"),
    (ConsentForm, "DateSubmitted", "date_submitted"),
    (IntakeToken, "Expiration", "expiration"),
]


@pytest.mark.parametrize(("model", "wire", "attr"), TIMESTAMP_FIELDS)
@pytest.mark.parametrize(
    "form",
    [
        "2024-05-28T09:30:15.123Z",
        "2024-05-28T11:30:15.123+02:00",
        "2024-05-28T09:30:15.1230000Z",  # seven fractional digits, as .NET writes them
        "2024-05-28T06:30:15.123000000-03:00",  # nine
        "2024-05-28T09:30:15.123",  # no offset: UTC
        1716888615123,
        1716888615123.0,  # a float without a fraction, as IntakeQ's C# client's doubles serialize
        1716888615123.0004,  # a fraction below half a microsecond
    ],
)
def test_every_timestamp_field_decodes_every_form_to_the_same_aware_datetime(
    model: type, wire: str, attr: str, form: object
) -> None:
    data = {"Id": "x", "Token": "t", "Url": "u", "Expiration": MOMENT.isoformat(), wire: form}
    value = getattr(structure(model, data), attr)
    assert isinstance(value, dt.datetime) and value.tzinfo is not None and value == MOMENT


@pytest.mark.parametrize(
    ("millis", "expected"),
    [
        (1744432686643.7417, dt.datetime(2025, 4, 12, 4, 38, 6, 643742, tzinfo=dt.UTC)),  # as recorded
        (1744432686643.5, dt.datetime(2025, 4, 12, 4, 38, 6, 643500, tzinfo=dt.UTC)),
        (1744432686643.9996, dt.datetime(2025, 4, 12, 4, 38, 6, 644000, tzinfo=dt.UTC)),  # rounds up a millisecond
        (-1.5, dt.datetime(1969, 12, 31, 23, 59, 59, 998500, tzinfo=dt.UTC)),
        (0.001, dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)),
    ],
)
def test_float_milliseconds_keep_their_fraction_to_the_microsecond(millis: float, expected: dt.datetime) -> None:
    for model, wire, attr in TIMESTAMP_FIELDS:
        data = {"Id": "x", "Token": "t", "Url": "u", "Expiration": MOMENT.isoformat(), wire: millis}
        assert getattr(structure(model, data), attr) == expected


def test_a_null_timestamp_is_none_where_the_spec_allows_it_and_an_error_where_it_is_required() -> None:
    assert structure(Intake, {"Id": "i", "DateSubmitted": None}).date_submitted is None
    with pytest.raises(WireError, match=r"IntakeToken\.Expiration: required field is missing"):
        structure(IntakeToken, {"Token": "t", "Url": "u", "Expiration": None})


def test_a_list_whose_objects_use_different_timestamp_forms_decodes_whole() -> None:
    practices = structure_list(
        Practice,
        [
            {"Id": "a", "DateCreated": "2024-05-28T09:30:15.123Z"},
            {"Id": "b", "DateCreated": 1716888615123},
            {"Id": "c", "DateCreated": 1716888615123.0},
            {"Id": "d", "DateCreated": "2024-05-28T09:30:15.1230000Z"},
        ],
    )
    assert [p.date_created for p in practices] == [MOMENT] * 4


def test_timestamps_before_1970_and_with_seven_fraction_digits_decode() -> None:
    assert structure(Intake, {"Id": "i", "DateCreated": -1000}).date_created == dt.datetime(
        1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC
    )
    dotnet = structure(Practice, {"Id": "p", "DateCreated": "2024-05-28T09:30:15.1230000Z"})
    assert dotnet.date_created == MOMENT


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (Practice, {"PracticeName": "x"}, "Practice.Id: required field is missing"),
        (Practice, {"Id": 5}, "Practice.Id: expected a string, got int"),
        (Practice, {"Id": "P", "FormsEnabled": "yes"}, "Practice.FormsEnabled: expected a boolean, got str"),
        (Practice, {"Id": "P", "DateCreated": "yesterday"}, "Practice.DateCreated: not an ISO 8601 timestamp"),
        (
            Intake,
            {"Id": "i", "DateCreated": [1.5]},
            "Intake.DateCreated: expected an ISO 8601 string or Unix milliseconds, got list",
        ),
        (
            Intake,
            {"Id": "i", "DateCreated": float("nan")},
            "Intake.DateCreated: expected an ISO 8601 string or Unix milliseconds, got float",
        ),
        (Intake, {"Id": "i", "DateCreated": 1e300}, "Intake.DateCreated: Unix milliseconds out of range"),
        (
            Intake,
            {"Id": "i", "DateCreated": True},
            "Intake.DateCreated: expected an ISO 8601 string or Unix milliseconds, got bool",
        ),
        (Intake, {"Id": "i", "DateCreated": 10**20}, "Intake.DateCreated: Unix milliseconds out of range"),
        (Practice, ["Id"], "expected a Practice object, got list"),
        (Intake, {"Id": "i", "ClientId": True}, "Intake.ClientId: expected an integer, got bool"),
        (Intake, {"Id": "i", "Questions": {"Id": "q"}}, "Intake.Questions: expected an array, got dict"),
        (Intake, {"Id": "i", "Questions": [{"Text": "no id"}]}, "Question.Id: required field is missing"),
    ],
)
def test_a_wrong_shape_names_the_model_and_field_but_not_the_value(model: type, data: object, message: str) -> None:
    with pytest.raises(WireError) as caught:
        structure(model, data)
    assert str(caught.value) == message


def test_a_list_endpoint_answering_an_object_is_a_wire_error() -> None:
    with pytest.raises(WireError, match="expected an array of Practice"):
        structure_list(Practice, {"Id": "P"})


@pytest.mark.parametrize("content", [b"<html>Server busy</html>", b"", b'{"Id": 1}', b"[1, 2"])
def test_bad_success_bodies_become_response_validation_errors(content: bytes) -> None:
    response = httpx.Response(
        200, content=content, request=httpx.Request("GET", "https://x.test/api/partner/masterForms")
    )
    with pytest.raises(ResponseValidationError) as caught:
        decode_response(response, "GET", "/api/partner/masterForms", Practice, False)
    assert caught.value.status_code == 200
    assert caught.value.body_excerpt == content.decode()[:2048]


def test_operations_without_a_documented_body_ignore_whatever_comes() -> None:
    response = httpx.Response(200, content=b"<html>ok</html>")
    assert decode_response(response, "DELETE", "/api/v1/assistants/a", None, False) is None


def test_credentials_in_answers_stay_out_of_repr() -> None:
    token = structure(EphemeralToken, {"Token": "one-time-secret", "UserId": "u1"})
    intake = structure(Intake, {"Id": "i", "Password": "345835"})
    assert token.token == "one-time-secret" and "one-time-secret" not in repr(token)
    assert intake.password == "345835" and "345835" not in repr(intake)


@pytest.mark.parametrize(
    ("model", "content"),
    [
        (EphemeralToken, b'{"token": "one-time-secret", "userId": "u1"}'),
        (EphemeralToken, b'"one-time-secret"'),
        (Intake, b'{"Id": 7, "Password": "one-time-secret"}'),
    ],
)
def test_an_answer_of_the_wrong_shape_that_carries_a_credential_keeps_no_excerpt_of_it(
    model: type, content: bytes
) -> None:
    response = httpx.Response(200, content=content, request=httpx.Request("GET", "https://x.test/api/partner/t"))
    with pytest.raises(ResponseValidationError) as caught:
        decode_response(response, "GET", "/api/partner/t", model, False)
    assert "one-time-secret" not in repr(vars(caught.value))


def test_an_update_naming_a_field_the_model_lacks_fails_by_name() -> None:
    current = structure(models.Practitioner, {"Id": "u1", "FirstName": "Ann"})
    merged = merge_update(models.PractitionerUpdate, current, {"last_name": "Lee"})
    assert (merged.id, merged.first_name, merged.last_name) == ("u1", "Ann", "Lee")
    with pytest.raises(TypeError, match="PractitionerUpdate has no field nickname"):
        merge_update(models.PractitionerUpdate, current, {"nickname": "Al"})


def test_what_recordings_add_decodes_strictly() -> None:
    """Intake.QuestionnaireId, a Status from the open set, and Question.OfficeNote as either type public
    clients give it (a string or a boolean): all of it is in the spec, so even the strict reading takes it."""
    intake = structure(
        Intake,
        {
            "Id": "i",
            "QuestionnaireId": "q-1",
            "Status": "Sent",
            "Questions": [{"Id": "a", "OfficeNote": True}, {"Id": "b", "OfficeNote": "see chart"}],
        },
    )
    assert (intake.questionnaire_id, intake.status) == ("q-1", "Sent")
    assert intake.questions is not None and [q.office_note for q in intake.questions] == [True, "see chart"]
    assert structure(Intake, {"Id": "i", "Status": "Archived"}).status == "Archived"  # an open set


@pytest.mark.parametrize(
    ("text", "microsecond"),
    [
        ("2025-04-12T04:38:06.6437417Z", 643742),  # the same instant as 1744432686643.7417 ms
        ("2025-04-12T04:38:06.6437414Z", 643741),
        ("2025-04-12T04:38:06.643741999+00:00", 643742),
        ("2025-04-12T04:38:06.6437410Z", 643741),
    ],
)
def test_seven_or_more_fractional_digits_round_to_the_microsecond_as_float_milliseconds_do(
    text: str, microsecond: int
) -> None:
    decoded = structure(Practice, {"Id": "p", "DateCreated": text}).date_created
    assert decoded == dt.datetime(2025, 4, 12, 4, 38, 6, microsecond, tzinfo=dt.UTC)
    carried = structure(Practice, {"Id": "p", "DateCreated": "2025-04-12T04:38:06.9999996Z"}).date_created
    assert carried == dt.datetime(2025, 4, 12, 4, 38, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize("strict", [True, False])
def test_dotnets_max_date_with_seven_fractional_digits_decodes_instead_of_escaping_as_overflow(strict: bool) -> None:
    # .NET writes DateTime.MaxValue (its "never") as 9999-12-31T23:59:59.9999999: rounding that up overflowed,
    # and the OverflowError escaped the call bare in either reading (not even a ResponseValidationError).
    response = httpx.Response(200, json={"Id": "p", "DateCreated": "9999-12-31T23:59:59.9999999Z"})
    practice = decode_response(response, "GET", "/p", Practice, False, strict=strict)
    assert practice.date_created == dt.datetime.max.replace(tzinfo=dt.UTC)
