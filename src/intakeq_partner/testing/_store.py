"""The fake's store: the state one partner account holds, its identifiers, seeding and look-ups."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from ._records import (
    DEFAULT_MASTER_FORMS,
    DEFAULT_ROLES,
    LIST_PAGINGS,
    UPDATE_SEMANTICS,
    ApiError,
    Assistant,
    EphemeralToken,
    Form,
    FormToken,
    ListPaging,
    MasterFormSpec,
    Practice,
    Practitioner,
    Question,
    Session,
    TimestampForm,
    UpdateSemantics,
    one_of,
    stamper,
)

T = TypeVar("T")
# A practice's practitioners and assistants: kept by Id, also addressed by their external ID.
Member = TypeVar("Member", Practitioner, Assistant)


class StateCore:
    """What one partner account holds, and the look-ups every resource's rules share."""

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

    def page_of(self, items: list[T], page: int | None, page_size: int) -> list[T]:
        """What a list call answers under the `list_paging` reading: all of it, or one page of it."""
        if self.list_paging == "ignores-page":
            return items
        if page is None and self.list_paging == "paged":
            page = 1
        if page is not None:
            items = items[(page - 1) * page_size : page * page_size]
        return items

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
        return StateCore._member(practice.practitioners, ref, "Practitioner")

    @staticmethod
    def assistant(practice: Practice, ref: str) -> Assistant:
        return StateCore._member(practice.assistants, ref, "Assistant")

    @staticmethod
    def _member(members: dict[str, Member], ref: str, noun: str) -> Member:
        """A practice's practitioner or assistant by Id, else by external ID; 404 naming `noun` if neither."""
        found = members.get(ref)
        if found is None:
            found = next((m for m in members.values() if m.external_id == ref), None)
        if found is None:
            raise ApiError(404, f"{noun} not found.")
        return found

    @staticmethod
    def _claim_external_id(members: dict[str, Member], external: str | None, field: str) -> None:
        """409 when another member of the practice already has this external ID (`field`: its wire name)."""
        if external is not None and any(m.external_id == external for m in members.values()):
            raise ApiError(409, f"{field} is already in use in this practice.")

    def _member_to_update(
        self, members: dict[str, Member], member_id: str | None, external: str | None, noun: str, field: str
    ) -> Member:
        """The member an update names, by Id (then its external ID may change) or else by external ID.

        A new external ID already in use is a 409; under update_semantics "replace" an Id-addressed update
        without one clears it.
        """
        if member_id:
            found = members.get(member_id)
            if found is None:
                raise ApiError(404, f"{noun} not found.")
            if external is not None and external != found.external_id:
                self._claim_external_id(members, external, field)
                found.external_id = external
            elif external is None and self.replaces:
                found.external_id = None
            return found
        if external:
            found = next((m for m in members.values() if m.external_id == external), None)
            if found is None:
                raise ApiError(404, f"{noun} not found.")
            return found
        raise ApiError(400, f"Id or {field} is required.")

    def _update_text(self, record: object, body: object, names: Sequence[str]) -> None:
        """Copy the body's text fields that are set (under "replace", also clear those left out, to "")."""
        for name in names:
            value = getattr(body, name)
            if value is not None or self.replaces:
                setattr(record, name, value or "")

    def _role(self, role: str | None) -> str:
        if role is None:
            return "Administrator"
        if role not in self.roles:
            raise ApiError(400, f"Role '{role}' does not exist.")
        return role

    @property
    def replaces(self) -> bool:
        """Whether updates clear what their body leaves out (update_semantics="replace")."""
        return bool(self.update_semantics == "replace")
