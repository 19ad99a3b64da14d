"""The records the fake keeps (practices, practitioners, forms, intakes, tokens), how each looks on the wire,
and the fake's settings for the places where the API document can be read two ways."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

JSON = dict[str, Any]
# Practice attributes a create or an update body may set, named as in the generated request models.
PRACTICE_FIELDS = (
    "practice_name",
    "first_name",
    "last_name",
    "email",
    "street_address",
    "city",
    "state",
    "postal_code",
    "forms_enabled",
    "booking_enabled",
)


class ApiError(Exception):
    """A failure the fake answers with ``{"Message": ...}`` and the given status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def iso(moment: datetime) -> str:
    """Render a time the way the partner API does: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def unix_ms(moment: datetime) -> int:
    """v1 bodies carry times as Unix milliseconds."""
    return int(moment.timestamp() * 1000)


def unix_ms_float(moment: datetime) -> float:
    """Unix milliseconds as a JSON float, the microseconds as its fraction, as recordings of v1 answers show
    (``1744432686643.7417``; a whole millisecond still comes as ``1744432686643.0``)."""
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    return micros / 1000


def iso_seven_digits(moment: datetime) -> str:
    """ISO 8601 with seven fractional digits and ``Z`` (.NET's round-trip format), as recordings show."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TimestampForm = Literal["documented", "iso", "unix-ms", "unix-ms-float", "iso-7", "mixed"]
ListPaging = Literal["all", "paged", "ignores-page"]
LIST_PAGINGS: tuple[ListPaging, ...] = ("all", "paged", "ignores-page")
UpdateSemantics = Literal["merge", "replace"]
UPDATE_SEMANTICS: tuple[UpdateSemantics, ...] = ("merge", "replace")
TIMESTAMP_FORMS: tuple[TimestampForm, ...] = ("documented", "iso", "unix-ms", "unix-ms-float", "iso-7", "mixed")
Stamp = Callable[[datetime, str], str | int | float]
"""Renders a moment for the wire, given the form the document shows for that field ("iso" or "ms")."""
_RENDER: dict[str, Callable[[datetime], str | int | float]] = {
    "iso": iso,
    "unix-ms": unix_ms,
    "unix-ms-float": unix_ms_float,
    "iso-7": iso_seven_digits,
}


def documented(moment: datetime, usual: str) -> str | int | float:
    return iso(moment) if usual == "iso" else unix_ms(moment)


def stamper(form: TimestampForm) -> Stamp:
    """The fake's `timestamps` setting: the document's forms, one form everywhere, or every form by turns
    ("mixed": ISO, integer milliseconds, float milliseconds or seven fractional digits, object by object)."""
    if form == "documented":
        return documented
    if form in _RENDER:
        render = _RENDER[form]
        return lambda moment, usual: render(moment)
    if form == "mixed":
        # The form follows from the moment, so objects differ but one object reads the same every time (the
        # forms differ in precision: a re-read in another form would not compare equal).
        forms = ("unix-ms", "iso", "unix-ms-float", "iso-7")
        return lambda moment, usual: _RENDER[forms[moment.microsecond % len(forms)]](moment)
    raise ValueError(f"timestamps must be one of {', '.join(TIMESTAMP_FORMS)}, not {form!r}")


@dataclass
class MasterFormSpec:
    """How to seed one master form: its questions (texts) and the names of its attached consent forms."""

    name: str
    type: str = "Questionnaire"
    questions: Sequence[str] | int = 0
    consent_forms: Sequence[str] = ()


DEFAULT_MASTER_FORMS: tuple[MasterFormSpec, ...] = (
    MasterFormSpec("Intake Form", "Questionnaire", 3, ("HIPAA Release", "Telehealth Consent")),
    MasterFormSpec("Progress Note", "TreatmentNote", 0),
    MasterFormSpec("Adult History", "Questionnaire", 20),
)
DEFAULT_ROLES: tuple[str, ...] = ("Administrator", "Practitioner")


@dataclass
class Question:
    id: str
    text: str
    question_type: str = "OpenQuestion"

    def to_wire(self) -> JSON:
        return {
            "Id": self.id,
            "Text": self.text,
            "Answer": None,
            "QuestionType": self.question_type,
            "OfficeUse": False,
            "OfficeNote": None,
            "Rows": [],
            "ColumnNames": [],
            "Attachments": [],
        }


@dataclass
class Form:
    """A form template, either a partner master form or a practice's copy."""

    id: str
    name: str
    type: str
    archived: bool = False
    questions: list[Question] = field(default_factory=list)
    # Master forms: names of attached consent forms. Practice forms: Ids of the practice's consent forms.
    consent_forms: list[str] = field(default_factory=list)
    source_master_id: str | None = None

    def to_wire(self) -> JSON:
        return {"Id": self.id, "Name": self.name, "Archived": self.archived, "Type": self.type}


@dataclass
class Practitioner:
    id: str
    first_name: str
    last_name: str
    email: str
    role_name: str
    external_id: str | None
    date_created: datetime
    is_inactive: bool = False
    # Records (intakes, notes, ...) and clients this practitioner owns; delete needs both at zero.
    client_data: int = 0
    owned_clients: int = 0

    def to_wire(self, stamp: Stamp = documented) -> JSON:
        return {
            "Id": self.id,
            "CompleteName": f"{self.first_name} {self.last_name}",
            "FirstName": self.first_name,
            "LastName": self.last_name,
            "Email": self.email,
            "RoleName": self.role_name,
            "ExternalPractitionerId": self.external_id,
            "DateCreated": stamp(self.date_created, "iso"),
            "IsInactive": self.is_inactive,
        }


@dataclass
class Assistant:
    id: str
    name: str
    email: str
    role_name: str
    external_id: str | None
    practitioner_ids: list[str]
    date_created: datetime
    is_inactive: bool = False
    last_name: str | None = None  # only the update body has it (the document's example); echoed once set

    def to_wire(self, stamp: Stamp = documented) -> JSON:
        wire: JSON = {
            "Id": self.id,
            "Name": self.name,
            "Email": self.email,
            "RoleName": self.role_name,
            "ExternalAssistantId": self.external_id,
            "PractitionerIds": list(self.practitioner_ids),
            "DateCreated": stamp(self.date_created, "iso"),
            "IsInactive": self.is_inactive,
        }
        if self.last_name is not None:
            wire["LastName"] = self.last_name
        return wire


@dataclass
class Client:
    id: int
    name: str | None
    email: str | None
    phone: str | None
    external_id: str | None
    owner_id: str


@dataclass
class Intake:
    id: str
    client: Client
    questionnaire: Form
    practitioner: Practitioner
    date_created: datetime
    url: str
    password: str
    consent_forms: list[tuple[str, str]]  # (Id, Name) of the intake's own consent form instances
    status: str = "Partial"

    def to_wire(self, stamp: Stamp = documented) -> JSON:
        return {
            "Id": self.id,
            "ClientName": self.client.name,
            "ClientEmail": self.client.email,
            "ClientId": self.client.id,
            "ExternalClientId": self.client.external_id,
            "Status": self.status,
            "DateCreated": stamp(self.date_created, "ms"),
            "DateSubmitted": None,
            "QuestionnaireName": self.questionnaire.name,
            "QuestionnaireId": self.questionnaire.id,
            "Practitioner": self.practitioner.email,
            "PractitionerName": f"{self.practitioner.first_name} {self.practitioner.last_name}",
            "PractitionerId": self.practitioner.id,
            "AppointmentId": None,
            "Url": self.url,
            "Password": self.password,
            "Questions": [q.to_wire() for q in self.questionnaire.questions],
            "ConsentForms": [
                {"Id": cid, "Name": name, "DocumentType": "Html", "Signed": False, "DateSubmitted": None}
                for cid, name in self.consent_forms
            ],
        }


@dataclass
class Practice:
    id: str
    practice_name: str
    first_name: str
    last_name: str
    email: str
    external_id: str | None
    date_created: datetime
    key: str
    main_practitioner_id: str
    street_address: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    forms_enabled: bool = True
    booking_enabled: bool = False
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    assistants: dict[str, Assistant] = field(default_factory=dict)
    forms: dict[str, Form] = field(default_factory=dict)
    intakes: dict[str, Intake] = field(default_factory=dict)
    clients: dict[int, Client] = field(default_factory=dict)

    def to_wire(self, stamp: Stamp = documented) -> JSON:
        return {
            "Id": self.id,
            "PracticeName": self.practice_name,
            "FirstName": self.first_name,
            "LastName": self.last_name,
            "Email": self.email,
            "ExternalPracticeId": self.external_id,
            "ExternalPractitionerId": self.main_practitioner.external_id,
            "DateCreated": stamp(self.date_created, "iso"),
            "StreetAddress": self.street_address,
            "City": self.city,
            "State": self.state,
            "PostalCode": self.postal_code,
            "FormsEnabled": self.forms_enabled,
            "BookingEnabled": self.booking_enabled,
        }

    @property
    def main_practitioner(self) -> Practitioner:
        return self.practitioners[self.main_practitioner_id]

    def client_data(self) -> dict[str, int]:
        """Client data count per practitioner Id."""
        return {p.id: p.client_data for p in self.practitioners.values()}


@dataclass
class EphemeralToken:
    practice_id: str
    user_id: str
    expires: datetime


@dataclass
class FormToken:
    practice_id: str
    intake_id: str
    expires: datetime


@dataclass
class Session:
    practice_id: str
    user_id: str
    expires: datetime


def one_of(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, not {value!r}")
    return value
