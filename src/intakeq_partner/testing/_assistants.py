"""The rules for assistants: create and update, with the practitioners they work for."""

from __future__ import annotations

from .._generated import models
from ._records import (
    ApiError,
    Assistant,
    Practice,
)
from ._store import StateCore


class AssistantRules(StateCore):
    """The rules for assistants: create and update, with the practitioners they work for."""

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
        self._claim_external_id(practice.assistants, external, "ExternalAssistantId")
        assistant = Assistant(self.hex_id(25), name, email, role, external, ids, self.clock())
        practice.assistants[assistant.id] = assistant
        return assistant

    def update_assistant(self, practice: Practice, body: models.AssistantUpdate) -> Assistant:
        aid, external = body.id, body.external_assistant_id
        role = self._role(body.role_name) if body.role_name is not None else None
        ids = self._practitioner_ids(practice, body.practitioner_ids)
        found = self._member_to_update(practice.assistants, aid, external, "Assistant", "ExternalAssistantId")
        self._update_text(found, body, ("name", "email"))
        if body.last_name is not None or self.replaces:
            found.last_name = body.last_name
        if role is not None or self.replaces:
            found.role_name = role or "Administrator"
        if ids is not None or self.replaces:
            # Left out under "replace": an empty list, which IntakeQ reads as access to every practitioner.
            found.practitioner_ids = ids or []
        return found
