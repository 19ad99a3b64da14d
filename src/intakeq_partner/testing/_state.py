"""In-memory model of what an IntakeQ partner account holds: the store plus one set of rules per resource.

The HTTP layer in ``_app`` only parses requests and renders answers; every rule (uniqueness,
Id-or-external-ID lookup, who may be deleted) lives in the rules modules so tests can drive and inspect it
directly through one `State`.
"""

from __future__ import annotations

from ._assistants import AssistantRules
from ._forms import FormRules
from ._intakes import IntakeRules
from ._practices import PracticeRules
from ._practitioners import PractitionerRules
from ._records import (
    DEFAULT_MASTER_FORMS,
    DEFAULT_ROLES,
    JSON,
    LIST_PAGINGS,
    PRACTICE_FIELDS,
    TIMESTAMP_FORMS,
    UPDATE_SEMANTICS,
    ApiError,
    Assistant,
    Client,
    EphemeralToken,
    Form,
    FormToken,
    Intake,
    ListPaging,
    MasterFormSpec,
    Practice,
    Practitioner,
    Question,
    Session,
    Stamp,
    TimestampForm,
    UpdateSemantics,
    documented,
    iso,
    one_of,
    stamper,
    unix_ms,
)

__all__ = [
    "DEFAULT_MASTER_FORMS",
    "DEFAULT_ROLES",
    "JSON",
    "LIST_PAGINGS",
    "PRACTICE_FIELDS",
    "TIMESTAMP_FORMS",
    "UPDATE_SEMANTICS",
    "ApiError",
    "Assistant",
    "Client",
    "EphemeralToken",
    "Form",
    "FormToken",
    "Intake",
    "ListPaging",
    "MasterFormSpec",
    "Practice",
    "Practitioner",
    "Question",
    "Session",
    "Stamp",
    "State",
    "TimestampForm",
    "UpdateSemantics",
    "documented",
    "iso",
    "one_of",
    "stamper",
    "unix_ms",
]


class State(PracticeRules, FormRules, PractitionerRules, AssistantRules, IntakeRules):
    """Everything one partner account holds, with the rules of the API applied."""
