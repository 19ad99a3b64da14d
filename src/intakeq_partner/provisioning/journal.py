"""The provisioning job's journal: what runs confirmed done, so that a resumed run does not read it all again.

At IntakeQ's limits (about 10 requests a minute per key) a job of thousands of practices runs for days, and a
restart that re-reads every practice costs more of the budget than the work left. So the job can keep a
journal in a SQLite file the user names (`provision(..., journal=Journal(path))`, `--state FILE`): every
item that converged (created, updated or unchanged) is written there, and committed, *before* it is
reported, each with a fingerprint of its practice's plan entry. A run that finds every item of a practice in
the journal under the practice's current fingerprint trusts it and sends nothing for that practice; a
practice whose entry changed, or with an item that failed, was skipped or never finished, is worked on
(read and compared) as usual. `verify=True` (`--verify`) trusts nothing and re-reads everything.

Each item is its own transaction (WAL mode), so a process killed at any point, SIGKILL included, leaves the
journal as of its last committed item: what was reported done is in it, and nothing else. (`synchronous` is
NORMAL: a committed item survives the process being killed, not the machine losing power; after a power
loss the journal may forget the last items, which costs their re-reading, never a wrong answer.)

The journal trusts that nobody else changes those practices in IntakeQ meanwhile; when someone may have,
run with `--verify`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from .._errors import InvalidRequestError
from .plan import PracticeSpec
from .report import ItemKind, ItemResult, ItemStatus

__all__ = ["Journal", "fingerprint"]

_SCHEMA = 1
_DONE = (ItemStatus.CREATED.value, ItemStatus.UPDATED.value, ItemStatus.UNCHANGED.value)


def fingerprint(spec: PracticeSpec) -> str:
    """A hash of everything the plan says about one practice: any change to its entry changes it."""
    text = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def items_of(spec: PracticeSpec) -> list[tuple[ItemKind, str]]:
    """The plan items of one practice, as the report lists them."""
    items = [(ItemKind.PRACTICE, spec.external_id)]
    items += [(ItemKind.PRACTITIONER, p.external_id) for p in spec.practitioners]
    items += [(ItemKind.ASSISTANT, a.external_id) for a in spec.assistants]
    items += [(ItemKind.FORM, f.name) for f in spec.forms]
    return items


class Journal:
    """A SQLite file of the items runs confirmed done; see the module's docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InvalidRequestError(f"the journal {self.path} is a folder; give a file name")
        if not self.path.parent.is_dir():
            raise InvalidRequestError(f"the journal's folder does not exist: {self.path.parent}")
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: one statement, one commit
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS items (practice TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,"
                " fingerprint TEXT NOT NULL, status TEXT NOT NULL, at REAL NOT NULL,"
                " PRIMARY KEY (practice, kind, key))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InvalidRequestError(f"{self.path} cannot be used as a journal: {exc}") from None
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_SCHEMA),))
        elif row[0] != str(_SCHEMA):
            raise InvalidRequestError(f"{self.path} is a journal of another version ({row[0]}); use a new file")

    def confirmed(self, practices: Iterable[PracticeSpec]) -> set[str]:
        """The external IDs of the practices whose every item the journal holds under their current entry."""
        done: dict[str, dict[tuple[str, str], str]] = {}
        for practice, kind, key, print_ in self._db.execute("SELECT practice, kind, key, fingerprint FROM items"):
            done.setdefault(practice, {})[kind, key] = print_
        found = set()
        for spec in practices:
            items = done.get(spec.external_id)
            if items is None:
                continue
            current = fingerprint(spec)
            if all(items.get((kind.value, key)) == current for kind, key in items_of(spec)):
                found.add(spec.external_id)
        return found

    def write(self, item: ItemResult, print_: str) -> None:
        """Record one item's outcome (committed on return): converged items are kept, others forgotten."""
        if item.status.value in _DONE:
            self._db.execute(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?)",
                (item.practice, item.kind.value, item.key, print_, item.status.value, time.time()),
            )
        else:
            self._db.execute(
                "DELETE FROM items WHERE practice = ? AND kind = ? AND key = ?",
                (item.practice, item.kind.value, item.key),
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
