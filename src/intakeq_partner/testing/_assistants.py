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
