"""In-memory model of what an IntakeQ partner account holds.

The HTTP layer in ``_app`` only parses requests and renders answers; every rule (uniqueness,
Id-or-external-ID lookup, who may be deleted) lives here so tests can drive and inspect it directly.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .._generated import models

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


TimestampForm = Literal["documented", "iso", "unix-ms", "mixed"]
ListPaging = Literal["all", "paged", "ignores-page"]
LIST_PAGINGS: tuple[ListPaging, ...] = ("all", "paged", "ignores-page")
UpdateSemantics = Literal["merge", "replace"]
UPDATE_SEMANTICS: tuple[UpdateSemantics, ...] = ("merge", "replace")
TIMESTAMP_FORMS: tuple[TimestampForm, ...] = ("documented", "iso", "unix-ms", "mixed")
Stamp = Callable[[datetime, str], str | int]
"""Renders a moment for the wire, given the form the document shows for that field ("iso" or "ms")."""


def documented(moment: datetime, usual: str) -> str | int:
    return iso(moment) if usual == "iso" else unix_ms(moment)


def stamper(form: TimestampForm) -> Stamp:
    """The fake's `timestamps` setting: the document's forms, one form everywhere, or both taking turns."""
    if form == "documented":
        return documented
    if form == "iso":
        return lambda moment, usual: iso(moment)
    if form == "unix-ms":
        return lambda moment, usual: unix_ms(moment)
    if form == "mixed":
        turn = itertools.count()
        return lambda moment, usual: iso(moment) if next(turn) % 2 else unix_ms(moment)
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


class State:
    """Everything one partner account holds, with the rules of the API applied."""

    def __init__(
        self,
        *,
        rng: random.Random,
        clock: Callable[[], datetime],
        roles: Sequence[str] = DEFAULT_ROLES,
        master_forms: Sequence[MasterFormSpec] = DEFAULT_MASTER_FORMS,
        form_token_ttl: timedelta = timedelta(hours=1),
        ephemeral_token_ttl: timedelta = timedelta(minutes=5),
        session_ttl: timedelta = timedelta(hours=1),
        timestamps: TimestampForm = "documented",
        list_paging: ListPaging = "all",
        update_semantics: UpdateSemantics = "merge",
    ) -> None:
        self.rng = rng
        self.stamp = stamper(timestamps)
        self.list_paging = one_of("list_paging", list_paging, LIST_PAGINGS)
        self.update_semantics = one_of("update_semantics", update_semantics, UPDATE_SEMANTICS)
        self.clock = clock
        self.roles: list[str] = list(roles)
        self.master_forms: dict[str, Form] = {}
        self.practices: dict[str, Practice] = {}
        # Indexes kept in step with `practices` by every method below that adds, removes, re-keys or renames
        # a practice, so that per-request lookups stay O(1) however many practices there are.
        self._by_key: dict[str, Practice] = {}
        self._by_external: dict[str, Practice] = {}
        self.ephemeral_tokens: dict[str, EphemeralToken] = {}
        self.form_tokens: dict[str, FormToken] = {}
        self.sessions: dict[str, Session] = {}
        self.form_token_ttl = form_token_ttl
        self.ephemeral_token_ttl = ephemeral_token_ttl
        self.session_ttl = session_ttl
        self._next_client_id = 1000
        for spec in master_forms:
            self.add_master_form(spec)

    # ----- identifiers

    def hex_id(self, length: int, upper: bool = False) -> str:
        text = f"{self.rng.getrandbits(length * 4):0{length}x}"
        return text.upper() if upper else text

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_key(self) -> str:
        return self.hex_id(32)

    # ----- seeding

    def add_role(self, name: str) -> None:
        if name not in self.roles:
            self.roles.append(name)

    def _questions(self, spec: Sequence[str] | int) -> list[Question]:
        texts = [f"Question {i + 1}" for i in range(spec)] if isinstance(spec, int) else list(spec)
        return [Question(self.hex_id(25), text) for text in texts]

    def add_master_form(self, spec: MasterFormSpec) -> Form:
        form = Form(
            self.hex_id(25), spec.name, spec.type, False, self._questions(spec.questions), list(spec.consent_forms)
        )
        self.master_forms[form.id] = form
        return form

    def add_practice_form(
        self,
        practice: Practice,
        name: str,
        type: str = "Questionnaire",
        questions: Sequence[str] | int = 0,
        consent_forms: Sequence[str] = (),
    ) -> Form:
        consent_ids = [self._add_form(practice, Form(self.hex_id(25), n, "ConsentForm")).id for n in consent_forms]
        return self._add_form(
            practice, Form(self.hex_id(25), name, type, False, self._questions(questions), consent_ids)
        )

    def _add_form(self, practice: Practice, form: Form) -> Form:
        practice.forms[form.id] = form
        return form

    def add_client_data(
        self, practice: Practice, practitioner: Practitioner, n: int = 1, owned_clients: int = 0
    ) -> None:
        practitioner.client_data += n
        practitioner.owned_clients += owned_clients

    # ----- lookups: the Id first, then the external ID

    def practice(self, ref: str) -> Practice:
        found = self.practices.get(ref)
        if found is None:
            found = self.practice_by_external_id(ref)
        if found is None:
            raise ApiError(404, "Practice not found.")
        return found

    def practice_by_external_id(self, external_id: str) -> Practice | None:
        found = self._by_external.get(external_id)
        # Checked against the practice itself, so an index gone stale (a field set directly) answers "no".
        if found is None or found.external_id != external_id or self.practices.get(found.id) is not found:
            return None
        return found

    def practice_by_key(self, key: str) -> Practice | None:
        found = self._by_key.get(key)
        if found is None or found.key != key or self.practices.get(found.id) is not found:
            return None
        return found

    def _index(self, practice: Practice) -> None:
        self._by_key[practice.key] = practice
        if practice.external_id is not None:
            self._by_external[practice.external_id] = practice

    def _unindex(self, practice: Practice) -> None:
        if self._by_key.get(practice.key) is practice:
            del self._by_key[practice.key]
        if practice.external_id is not None and self._by_external.get(practice.external_id) is practice:
            del self._by_external[practice.external_id]

    @staticmethod
    def practitioner(practice: Practice, ref: str) -> Practitioner:
        found = practice.practitioners.get(ref)
        if found is None:
            found = next((p for p in practice.practitioners.values() if p.external_id == ref), None)
        if found is None:
            raise ApiError(404, "Practitioner not found.")
        return found

    @staticmethod
    def assistant(practice: Practice, ref: str) -> Assistant:
        found = practice.assistants.get(ref)
        if found is None:
            found = next((a for a in practice.assistants.values() if a.external_id == ref), None)
        if found is None:
            raise ApiError(404, "Assistant not found.")
        return found

    def _role(self, role: str | None) -> str:
        if role is None:
            return "Administrator"
        if role not in self.roles:
            raise ApiError(400, f"Role '{role}' does not exist.")
        return role

    # ----- practices

    def create_practice(self, body: models.PracticeCreate) -> Practice:
        first, last, email = body.first_name, body.last_name, body.email
        external = body.external_practice_id or None
        external_practitioner = body.external_practitioner_id or None
        if external is not None and self.practice_by_external_id(external) is not None:
            raise ApiError(409, "ExternalPracticeId is already in use.")
        practice_id = self.hex_id(8, upper=True)
        while practice_id in self.practices:
            practice_id = self.hex_id(8, upper=True)
        now = self.clock()
        main = Practitioner(self.hex_id(25), first, last, email, "Administrator", external_practitioner, now)
        practice = Practice(practice_id, body.practice_name, first, last, email, external, now, self.new_key(), main.id)
        practice.practitioners[main.id] = main
        self._apply_practice_fields(practice, body)
        self.practices[practice.id] = practice
        self._index(practice)
        return practice

    @staticmethod
    def _apply_practice_fields(
        practice: Practice, body: models.PracticeCreate | models.PracticeUpdate, replace: bool = False
    ) -> None:
        """Set what the body sets; what it leaves out stays as it was, or (`replace`) is cleared."""
        for attr in PRACTICE_FIELDS:
            value = getattr(body, attr)
            if value is not None:
                setattr(practice, attr, value)
            elif replace:
                setattr(practice, attr, False if attr.endswith("_enabled") else None)

    @property
    def replaces(self) -> bool:
        """Whether updates clear what their body leaves out (update_semantics="replace")."""
        return bool(self.update_semantics == "replace")

    def update_practice(self, body: models.PracticeUpdate) -> Practice:
        practice_id, external = body.id, body.external_practice_id
        if practice_id:
            practice = self.practices.get(practice_id)
            if practice is None:
                raise ApiError(404, "Practice not found.")
            if external is not None and external != practice.external_id:
                if self.practice_by_external_id(external) is not None:
                    raise ApiError(409, "ExternalPracticeId is already in use.")
                self._unindex(practice)
                practice.external_id = external
                self._index(practice)
            elif external is None and self.replaces:  # found by Id: a replace drops an external ID left out
                self._unindex(practice)
                practice.external_id = None
                self._index(practice)
        elif external:
            practice = self.practice_by_external_id(external)
            if practice is None:
                raise ApiError(404, "Practice not found.")
        else:
            raise ApiError(400, "Id or ExternalPracticeId is required.")
        self._apply_practice_fields(practice, body, self.replaces)
        return practice

    def delete_practice(self, practice: Practice) -> None:
        del self.practices[practice.id]
        self._unindex(practice)
        for store in (self.ephemeral_tokens, self.form_tokens, self.sessions):
            for token in [t for t, v in store.items() if v.practice_id == practice.id]:
                del store[token]

    def list_practices(
        self, id: str | None, email: str | None, external_id: str | None, page: int | None, page_size: int
    ) -> list[Practice]:
        candidates: Iterable[Practice] = self.practices.values()
        if id is not None:
            candidates = [p for p in (self.practices.get(id),) if p is not None]
        elif external_id is not None:
            candidates = [p for p in (self.practice_by_external_id(external_id),) if p is not None]
        found = [
            p
            for p in candidates
            if (id is None or p.id == id)
            and (email is None or p.email.casefold() == email.casefold())
            and (external_id is None or p.external_id == external_id)
        ]
        if self.list_paging == "ignores-page":
            return found
        if page is None and self.list_paging == "paged":
            page = 1
        if page is not None:
            found = found[(page - 1) * page_size : page * page_size]
        return found

    def rotate_key(self, practice: Practice) -> str:
        self._unindex(practice)
        practice.key = self.new_key()
        self._index(practice)
        return practice.key

    def ephemeral_token(self, practice: Practice, user_ref: str | None) -> EphemeralToken:
        return self.issue_ephemeral_token(practice, user_ref)[1]

    def issue_ephemeral_token(self, practice: Practice, user_ref: str | None) -> tuple[str, EphemeralToken]:
        """A new one-time sign-in token: (its value, what it grants)."""
        user = practice.main_practitioner if user_ref is None else self.practitioner(practice, user_ref)
        token = EphemeralToken(practice.id, user.id, self.clock() + self.ephemeral_token_ttl)
        value = self.hex_id(40)
        self.ephemeral_tokens[value] = token
        return value, token

    def sign_in(self, token: str | None, user_ref: str | None) -> str:
        """Consume an ephemeral token; return a new session id."""
        found = self.ephemeral_tokens.get(token or "")
        if found is None or found.expires <= self.clock():
            raise ApiError(401, "The token is invalid or has already been used.")
        practice = self.practices.get(found.practice_id)
        if practice is None or user_ref is None:
            raise ApiError(401, "The token does not belong to this user.")
        try:
            user = self.practitioner(practice, user_ref)
        except ApiError:
            raise ApiError(401, "The token does not belong to this user.") from None
        if user.id != found.user_id:
            raise ApiError(401, "The token does not belong to this user.")
        del self.ephemeral_tokens[token or ""]
        session_id = self.hex_id(32)
        self.sessions[session_id] = Session(practice.id, user.id, self.clock() + self.session_ttl)
        return session_id

    def session(self, session_id: str | None) -> Session | None:
        found = self.sessions.get(session_id or "")
        if found is None or found.expires <= self.clock() or found.practice_id not in self.practices:
            return None
        return found

    # ----- forms

    def copy_form(self, body: models.CopyFormRequest) -> Form:
        destination = body.destination_practice_id
        with_consent = body.copy_attached_consent_forms or False
        source = self.master_forms.get(body.source_master_form_id)
        if source is None:
            raise ApiError(404, "Master form not found.")
        practice = self.practice(destination)
        consent_ids: list[str] = []
        if with_consent:
            consent_ids = [
                self._add_form(practice, Form(self.hex_id(25), n, "ConsentForm", source_master_id=source.id)).id
                for n in source.consent_forms
            ]
        questions = [Question(self.hex_id(25), q.text, q.question_type) for q in source.questions]
        copy = Form(self.hex_id(25), source.name, source.type, False, questions, consent_ids, source.id)
        return self._add_form(practice, copy)

    # ----- practitioners

    def create_practitioner(self, practice: Practice, body: models.PractitionerCreate) -> Practitioner:
        first, last, email = body.first_name, body.last_name, body.email
        role = self._role(body.role_name)
        external = body.external_practitioner_id or None
        if external is not None and any(p.external_id == external for p in practice.practitioners.values()):
            raise ApiError(409, "ExternalPractitionerId is already in use in this practice.")
        practitioner = Practitioner(self.hex_id(25), first, last, email, role, external, self.clock())
        practice.practitioners[practitioner.id] = practitioner
        return practitioner

    def update_practitioner(self, practice: Practice, body: models.PractitionerUpdate) -> Practitioner:
        pid, external = body.id, body.external_practitioner_id
        role = self._role(body.role_name) if body.role_name is not None else None
        if pid:
            found = practice.practitioners.get(pid)
            if found is None:
                raise ApiError(404, "Practitioner not found.")
            if external is not None and external != found.external_id:
                if any(p.external_id == external for p in practice.practitioners.values()):
                    raise ApiError(409, "ExternalPractitionerId is already in use in this practice.")
                found.external_id = external
            elif external is None and self.replaces:
                found.external_id = None
        elif external:
            found = next((p for p in practice.practitioners.values() if p.external_id == external), None)
            if found is None:
                raise ApiError(404, "Practitioner not found.")
        else:
            raise ApiError(400, "Id or ExternalPractitionerId is required.")
        for attr in ("first_name", "last_name", "email"):
            value = getattr(body, attr)
            if value is not None or self.replaces:
                setattr(found, attr, value or "")
        if role is not None or self.replaces:
            found.role_name = role or "Administrator"
        return found

    @staticmethod
    def delete_practitioner(practice: Practice, practitioner: Practitioner) -> None:
        if practitioner.client_data or practitioner.owned_clients:
            raise ApiError(409, "The practitioner has client data; transfer it before deleting.")
        if practitioner.id == practice.main_practitioner_id:
            raise ApiError(409, "The main practice user cannot be deleted.")
        del practice.practitioners[practitioner.id]
        for assistant in practice.assistants.values():
            if practitioner.id in assistant.practitioner_ids:
                assistant.practitioner_ids.remove(practitioner.id)

    @staticmethod
    def transfer(practice: Practice, source: Practitioner, destination: Practitioner, data: bool) -> None:
        """Ownership moves clients only; data moves every record and the clients with them."""
        if source.id == destination.id:
            return
        for client in practice.clients.values():
            if client.owner_id == source.id:
                client.owner_id = destination.id
        destination.owned_clients += source.owned_clients
        source.owned_clients = 0
        if data:
            for intake in practice.intakes.values():
                if intake.practitioner is source:
                    intake.practitioner = destination
            destination.client_data += source.client_data
            source.client_data = 0

    # ----- assistants

    def _practitioner_ids(self, practice: Practice, refs: list[str] | None) -> list[str] | None:
        if refs is None:
            return None
        ids: list[str] = []
        for ref in refs:
            try:
                pid = self.practitioner(practice, ref).id
            except ApiError:
                raise ApiError(400, f"Unknown practitioner '{ref}'.") from None
            if pid not in ids:
                ids.append(pid)
        return ids

    def create_assistant(self, practice: Practice, body: models.AssistantCreate) -> Assistant:
        name, email = body.name, body.email
        role = self._role(body.role_name)
        external = body.external_assistant_id or None
        ids = self._practitioner_ids(practice, body.practitioner_ids) or []
        if external is not None and any(a.external_id == external for a in practice.assistants.values()):
            raise ApiError(409, "ExternalAssistantId is already in use in this practice.")
        assistant = Assistant(self.hex_id(25), name, email, role, external, ids, self.clock())
        practice.assistants[assistant.id] = assistant
        return assistant

    def update_assistant(self, practice: Practice, body: models.AssistantUpdate) -> Assistant:
        aid, external = body.id, body.external_assistant_id
        role = self._role(body.role_name) if body.role_name is not None else None
        ids = self._practitioner_ids(practice, body.practitioner_ids)
        if aid:
            found = practice.assistants.get(aid)
            if found is None:
                raise ApiError(404, "Assistant not found.")
            if external is not None and external != found.external_id:
                if any(a.external_id == external for a in practice.assistants.values()):
                    raise ApiError(409, "ExternalAssistantId is already in use in this practice.")
                found.external_id = external
            elif external is None and self.replaces:
                found.external_id = None
        elif external:
            found = next((a for a in practice.assistants.values() if a.external_id == external), None)
            if found is None:
                raise ApiError(404, "Assistant not found.")
        else:
            raise ApiError(400, "Id or ExternalAssistantId is required.")
        for attr in ("name", "email"):
            value = getattr(body, attr)
            if value is not None or self.replaces:
                setattr(found, attr, value or "")
        if body.last_name is not None or self.replaces:
            found.last_name = body.last_name
        if role is not None or self.replaces:
            found.role_name = role or "Administrator"
        if ids is not None or self.replaces:
            # Left out under "replace": an empty list, which IntakeQ reads as access to every practitioner.
            found.practitioner_ids = ids or []
        return found

    # ----- intakes

    def create_intake(self, practice: Practice, body: models.IntakeCreate, base_url: str) -> Intake:
        questionnaire_id = body.questionnaire_id
        client_id = body.client_id
        name, email, phone = body.client_name, body.client_email, body.client_phone
        external = body.external_client_id
        practitioner_ref = body.practitioner_id
        # The document's rule: ClientId alone will do; without it ClientName is needed, and ClientEmail unless
        # ClientPhone is given. ExternalClientId only tags the client (this fake's reading of "instead of ClientId").
        if client_id is None and not name:
            raise ApiError(400, "ClientName is required when ClientId is not provided.")
        if client_id is None and not (email or phone):
            raise ApiError(400, "ClientEmail is required when neither ClientId nor ClientPhone is provided.")
        form = practice.forms.get(questionnaire_id)
        if form is None:
            raise ApiError(404, "Questionnaire not found.")
        if form.type != "Questionnaire":
            raise ApiError(400, "QuestionnaireId must refer to a Questionnaire.")
        practitioner = practice.main_practitioner
        if practitioner_ref:
            practitioner = self.practitioner(practice, practitioner_ref)
        client = self._client(practice, client_id, external, name, email, phone, practitioner)
        intake_id = self.new_uuid()
        consent = [(self.new_uuid(), practice.forms[c].name) for c in form.consent_forms if c in practice.forms]
        password = f"{self.rng.randrange(10**6):06d}"
        intake = Intake(
            intake_id, client, form, practitioner, self.clock(), f"{base_url}/intake/{intake_id}", password, consent
        )
        practice.intakes[intake.id] = intake
        practitioner.client_data += 1
        return intake

    def _client(
        self,
        practice: Practice,
        client_id: int | None,
        external: str | None,
        name: str | None,
        email: str | None,
        phone: str | None,
        owner: Practitioner,
    ) -> Client:
        found: Client | None = None
        if client_id is not None:
            found = practice.clients.get(client_id)
        elif external:
            found = next((c for c in practice.clients.values() if c.external_id == external), None)
        elif email:
            found = next((c for c in practice.clients.values() if (c.email or "").casefold() == email.casefold()), None)
        if found is None:
            if client_id is None:
                client_id = self._next_client_id
            self._next_client_id = max(self._next_client_id, client_id) + 1
            found = Client(client_id, name, email, phone, external, owner.id)
            practice.clients[client_id] = found
            owner.owned_clients += 1
        else:
            found.name = name or found.name
            found.email = email or found.email
            found.phone = phone or found.phone
            found.external_id = external or found.external_id
        return found

    def form_token(self, practice: Practice, intake_id: str) -> tuple[str, FormToken]:
        if intake_id not in practice.intakes:
            raise ApiError(404, "Intake not found.")
        token = FormToken(practice.id, intake_id, self.clock() + self.form_token_ttl)
        value = self.hex_id(40)
        self.form_tokens[value] = token
        return value, token

    def check_form_token(self, intake_id: str, token: str | None) -> Intake:
        found = self.form_tokens.get(token or "")
        if found is None or found.intake_id != intake_id or found.expires <= self.clock():
            raise ApiError(401, "The form link has expired or is not valid.")
        practice = self.practices.get(found.practice_id)
        if practice is None or intake_id not in practice.intakes:
            raise ApiError(401, "The form link has expired or is not valid.")
        return practice.intakes[intake_id]
