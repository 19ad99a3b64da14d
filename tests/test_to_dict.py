"""Models leave the library as plain data: Python names for handlers and logs, wire names for replay."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from intakeq_partner import EphemeralToken, FormToken, Intake, InvalidRequestError, Practice, to_dict
from intakeq_partner._generated.models import PracticeApiKey
from intakeq_partner._wire import structure

INTAKE_WIRE: dict[str, Any] = {
    "Id": "i-1",
    "ClientName": "Sam Poe",
    "ClientId": 7,
    "DateCreated": 1458526480368,  # Unix milliseconds
    "DateSubmitted": None,
    "Password": "s3cret",
    "Questions": [{"Id": "q", "Rows": [{"Text": "r", "Answers": ["a"]}], "Shape": "new"}],
    "ConsentForms": [{"Id": "c", "Signed": True, "DateSubmitted": "2024-05-01T10:00:00.250+02:00"}],
    "Mood": {"Level": 3},  # a field this version does not know
}


def test_python_names_hold_every_field_and_are_ready_for_json() -> None:
    intake = structure(Intake, INTAKE_WIRE)
    data = to_dict(intake)
    assert data["id"] == "i-1" and data["client_id"] == 7
    assert data["date_created"] == "2016-03-21T02:14:40.368Z"
    assert data["date_submitted"] is None and "practitioner_id" in data  # None kept: the shape never varies
    assert data["questions"][0]["rows"] == [{"text": "r", "answers": ["a"]}]
    assert data["consent_forms"][0]["date_submitted"] == "2024-05-01T08:00:00.250Z"  # in UTC
    assert "Mood" not in json.dumps(data) and "additional_properties" not in data  # unknown fields: wire only
    assert json.loads(json.dumps(data)) == data


def test_wire_names_give_back_an_equal_model_unknown_fields_included() -> None:
    for model, wire in (
        (Intake, INTAKE_WIRE),
        (Practice, {"Id": "P", "City": None, "DateCreated": "2024-05-01T10:00:00.123456", "Tier": 2}),
    ):
        obj = structure(model, wire)
        data = to_dict(obj, names="wire")
        assert structure(model, json.loads(json.dumps(data))) == obj
        assert None not in data.values()  # None fields are left out, as in a request
    assert to_dict(structure(Intake, INTAKE_WIRE), names="wire")["Mood"] == {"Level": 3}


def test_credentials_can_be_left_out_for_logs() -> None:
    intake = structure(Intake, INTAKE_WIRE)
    assert to_dict(intake)["password"] == "s3cret"
    assert "password" not in to_dict(intake, credentials=False)
    assert "Password" not in to_dict(intake, names="wire", credentials=False)
    assert to_dict(EphemeralToken(token="t", user_id="u"), credentials=False) == {"user_id": "u"}
    assert to_dict(PracticeApiKey(api_key="k"), credentials=False) == {}
    token = FormToken.from_wire("t", "https://forms.example.com/x", dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    expected = {"token": "t", "url": "https://forms.example.com/x", "expiration": "2024-01-01T00:00:00.000Z"}
    assert to_dict(token) == expected
    assert "token" not in to_dict(token, credentials=False)


def test_bad_arguments_are_refused_with_our_typed_error() -> None:
    with pytest.raises(InvalidRequestError, match="model of this library"):
        to_dict({"Id": "P"})
    with pytest.raises(InvalidRequestError, match="names"):
        to_dict(Practice(id="P"), names="camel")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="credentials"):
        to_dict(Practice(id="P"), credentials="no")  # type: ignore[arg-type]
