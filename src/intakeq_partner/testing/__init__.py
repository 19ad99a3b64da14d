"""A stateful fake of the IntakeQ Partner API for tests: in-process or over loopback, with seeded faults.

It is an independent implementation of the wire format and imports nothing else from ``intakeq_partner``,
so it can check the client rather than mirror it. Its names load on first use, so that importing the package
(``python -m intakeq_partner.testing``, the pytest plugin) works without the ``testing`` extra and can say
how to install it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._extra import require_testing_extra

if TYPE_CHECKING:
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

_HOMES = {
    "ConnectionDropped": "_app",
    "FakeIntakeQ": "_fake",
    "Faults": "_faults",
    "RequestRecord": "_faults",
    "Stats": "_faults",
    "DEFAULT_MASTER_FORMS": "_state",
    "DEFAULT_ROLES": "_state",
    "ApiError": "_state",
    "Assistant": "_state",
    "Form": "_state",
    "Intake": "_state",
    "MasterFormSpec": "_state",
    "Practice": "_state",
    "Practitioner": "_state",
    "FakeTransport": "_transport",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_testing_extra()
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
