"""What a provisioning run did, item by item, in a shape that serialises to JSON for audit trails."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ItemKind", "ItemResult", "ItemStatus", "ProvisionReport"]


class _PlainName(StrEnum):
    """Shown as its plain name, so `print(report.counts)` reads {'created': 3, ...}, not enum reprs."""

    def __repr__(self) -> str:
        return repr(self.value)


class ItemKind(_PlainName):
    PRACTICE = "practice"
    PRACTITIONER = "practitioner"
    ASSISTANT = "assistant"
    FORM = "form"


class ItemStatus(_PlainName):
    """In a dry run, `created` and `updated` mean "would be"."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One plan item's outcome. `key` is the item's external ID (a form's: its name); `changed` names the
    fields an update set; `reason` says why an item failed or was skipped (never a key or a body), or that
    an unchanged item was taken on the journal's word."""

    kind: ItemKind
    practice: str
    key: str
    status: ItemStatus
    reason: str | None = None
    changed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind.value,
            "practice": self.practice,
            "key": self.key,
            "status": self.status.value,
        }
        if self.changed:
            data["changed"] = list(self.changed)
        if self.reason is not None:
            data["reason"] = self.reason
        return data


@dataclass(slots=True)
class ProvisionReport:
    """Every item of the plan with its outcome, in the order they finished."""

    items: list[ItemResult] = field(default_factory=list)
    elapsed: float = 0.0
    dry_run: bool = False

    @property
    def counts(self) -> dict[ItemStatus, int]:
        found = Counter(item.status for item in self.items)
        return {status: found[status] for status in ItemStatus}

    def counts_by_kind(self) -> dict[ItemKind, dict[ItemStatus, int]]:
        table = {kind: dict.fromkeys(ItemStatus, 0) for kind in ItemKind}
        for item in self.items:
            table[item.kind][item.status] += 1
        return table

    @property
    def ok(self) -> bool:
        """True when every item converged (nothing failed or was skipped)."""
        return not any(item.status in (ItemStatus.FAILED, ItemStatus.SKIPPED) for item in self.items)

    @property
    def failures(self) -> list[ItemResult]:
        return [item for item in self.items if item.status in (ItemStatus.FAILED, ItemStatus.SKIPPED)]

    @property
    def changes(self) -> int:
        """Items created or updated (in a dry run: that would be)."""
        counts = self.counts
        return counts[ItemStatus.CREATED] + counts[ItemStatus.UPDATED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "elapsed_seconds": round(self.elapsed, 3),
            "counts": {status.value: n for status, n in self.counts.items()},
            "items": [item.to_dict() for item in self.items],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
