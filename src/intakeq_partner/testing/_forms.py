"""The rules for forms: copying a master form (and its consent forms) into a practice."""

from __future__ import annotations

from .._generated import models
from ._records import (
    ApiError,
    Form,
    Question,
)
from ._store import StateCore


class FormRules(StateCore):
    """The rules for forms: copying a master form (and its consent forms) into a practice."""

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
