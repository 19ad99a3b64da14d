"""The rules for intake forms: create (finding or making the client) and form sign-in tokens."""

from __future__ import annotations

from .._generated import models
from ._records import (
    ApiError,
    Client,
    FormToken,
    Intake,
    Practice,
    Practitioner,
)
from ._store import StateCore


class IntakeRules(StateCore):
    """The rules for intake forms: create (finding or making the client) and form sign-in tokens."""

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
