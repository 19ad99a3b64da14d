"""The rules for practices: create, update, delete, list, keys, sign-in tokens and sessions."""

from __future__ import annotations

from collections.abc import Iterable

from .._generated import models
from ._records import (
    PRACTICE_FIELDS,
    ApiError,
    EphemeralToken,
    Practice,
    Practitioner,
    Session,
)
from ._store import StateCore


class PracticeRules(StateCore):
    """The rules for practices: create, update, delete, list, keys, sign-in tokens and sessions."""

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
        return self.page_of(found, page, page_size)

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
