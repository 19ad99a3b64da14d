"""Wire bodies for the decoding benchmark, shaped like the fake's (and IntakeQ's) answers."""

from __future__ import annotations

import json
import random
from typing import Any


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def practice(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "Id": _hex(rng, 8).upper(),
        "PracticeName": f"Practice {i}",
        "FirstName": "Pat",
        "LastName": f"Doe {i}",
        "Email": f"pat{i}@example.com",
        "ExternalPracticeId": f"ext-{i}",
        "DateCreated": f"2025-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z",
        "StreetAddress": f"{i} Main Street",
        "City": "Springfield",
        "State": "IL",
        "PostalCode": f"{60000 + i % 1000}",
        "FormsEnabled": True,
        "BookingEnabled": i % 2 == 0,
    }


def question(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "Id": _hex(rng, 25),
        "Text": f"Question {n}: how have you been feeling lately?",
        "Answer": None if n % 3 else f"Answer {n}",
        "QuestionType": "OpenQuestion",
        "OfficeUse": False,
        "OfficeNote": None,
        "Rows": [],
        "ColumnNames": [],
        "Attachments": [],
    }


def intake(rng: random.Random, i: int, questions: int = 20, consent_forms: int = 2) -> dict[str, Any]:
    return {
        "Id": _hex(rng, 24),
        "ClientName": f"Client {i}",
        "ClientEmail": f"client{i}@example.com",
        "ClientId": 1000 + i,
        "ExternalClientId": f"client-{i}",
        "Status": "Partial",
        "DateCreated": 1764000000000 + i * 1000,
        "DateSubmitted": None,
        "QuestionnaireName": "Adult History",
        "Practitioner": "pat@example.com",
        "PractitionerName": "Pat Doe",
        "PractitionerId": _hex(rng, 25),
        "AppointmentId": None,
        "Url": f"https://intakeq.com/new/{_hex(rng, 12)}",
        "Password": _hex(rng, 6),
        "Questions": [question(rng, n) for n in range(questions)],
        "ConsentForms": [
            {"Id": _hex(rng, 25), "Name": name, "DocumentType": "Html", "Signed": False, "DateSubmitted": None}
            for name in ("HIPAA Release", "Telehealth Consent")[:consent_forms]
        ],
    }


def practices_body(n: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return json.dumps([practice(rng, i) for i in range(n)]).encode()


def intakes_body(n: int, seed: int = 2) -> bytes:
    rng = random.Random(seed)
    return json.dumps([intake(rng, i) for i in range(n)]).encode()
