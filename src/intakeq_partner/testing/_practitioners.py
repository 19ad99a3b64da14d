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
        self._claim_external_id(practice.practitioners, external, "ExternalPractitionerId")
        practitioner = Practitioner(self.hex_id(25), first, last, email, role, external, self.clock())
        practice.practitioners[practitioner.id] = practitioner
        return practitioner

    def update_practitioner(self, practice: Practice, body: models.PractitionerUpdate) -> Practitioner:
        pid, external = body.id, body.external_practitioner_id
        role = self._role(body.role_name) if body.role_name is not None else None
        found = self._member_to_update(practice.practitioners, pid, external, "Practitioner", "ExternalPractitionerId")
        self._update_text(found, body, ("first_name", "last_name", "email"))
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
