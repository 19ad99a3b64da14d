"""The rules for practitioners: create, update, delete and transfers of client data."""

from __future__ import annotations

from .._generated import models
from ._records import (
    ApiError,
    Practice,
    Practitioner,
)
from ._store import StateCore


class PractitionerRules(StateCore):
    """The rules for practitioners: create, update, delete and transfers of client data."""

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
