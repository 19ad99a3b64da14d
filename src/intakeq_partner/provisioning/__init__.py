"""Declarative provisioning: a plan file says what the partner account should hold, `provision` makes it so."""

from .job import COPY_ATTEMPTS, provision
from .journal import Journal
from .plan import (
    AssistantSpec,
    FormSpec,
    Plan,
    PlanError,
    PlanProblem,
    PracticeSpec,
    PractitionerSpec,
    load_plan,
    parse_plan,
)
from .report import ItemKind, ItemResult, ItemStatus, ProvisionReport

__all__ = [
    "COPY_ATTEMPTS",
    "AssistantSpec",
    "FormSpec",
    "ItemKind",
    "ItemResult",
    "ItemStatus",
    "Journal",
    "Plan",
    "PlanError",
    "PlanProblem",
    "PracticeSpec",
    "PractitionerSpec",
    "ProvisionReport",
    "load_plan",
    "parse_plan",
    "provision",
]
