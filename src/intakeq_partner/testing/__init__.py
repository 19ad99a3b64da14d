"""A stateful fake of the IntakeQ Partner API for tests: in-process or over loopback, with seeded faults.

It is an independent implementation of the wire format and imports nothing else from ``intakeq_partner``,
so it can check the client rather than mirror it.
"""

from ._app import ConnectionDropped
from ._fake import FakeIntakeQ
from ._faults import Faults, RequestRecord, Stats
from ._state import (
    DEFAULT_MASTER_FORMS,
    DEFAULT_ROLES,
    ApiError,
    Assistant,
    Form,
    Intake,
    MasterFormSpec,
    Practice,
    Practitioner,
)
from ._transport import FakeTransport

__all__ = [
    "DEFAULT_MASTER_FORMS",
    "DEFAULT_ROLES",
    "ApiError",
    "Assistant",
    "ConnectionDropped",
    "FakeIntakeQ",
    "FakeTransport",
    "Faults",
    "Form",
    "Intake",
    "MasterFormSpec",
    "Practice",
    "Practitioner",
    "RequestRecord",
    "Stats",
]
