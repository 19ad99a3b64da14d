"""The plan: what a partner account should hold, read from TOML or JSON and checked before any call.

Every problem in a file is collected and reported at once, each naming the file, the item and the field,
so a 10,000-practice plan is fixed in one edit rather than one run per typo. Field names are the facade's
(`external_practice_id` as in `practices.create`, and so on).

Shape (TOML shown; JSON is the same tree)::

    [defaults]                      # optional: address fields, forms_enabled, booking_enabled,
    forms = ["Intake Form"]         # forms and copy_attached_consent_forms, used where a practice sets none
    copy_attached_consent_forms = true

    [[practices]]                   # a list whose items carry external_practice_id, or a table keyed by it
    external_practice_id = "ext-0001"
    practice_name = "Lee Counseling"
    first_name = "Ann"              # practice_name, first_name, last_name, email are required
    last_name = "Lee"
    email = "ann@lee.example"
    external_practitioner_id = "ann"         # the main user's external ID, as in practices.create

    [[practices.practitioners]]     # external_practitioner_id, first_name, last_name, email, optional role_name
    external_practitioner_id = "dr-kim"
    first_name = "Jo"
    last_name = "Kim"
    email = "jo@lee.example"

    [[practices.assistants]]        # external_assistant_id, name, email, optional role_name, practitioner_ids
    external_assistant_id = "front-desk"
    name = "Sam Roe"
    email = "desk@lee.example"
    practitioner_ids = ["dr-kim", "ann"]     # external IDs; [] means all, absent means leave as is

A practice's `forms` replaces the default list; an entry is a master form name or
`{ name = "...", copy_attached_consent_forms = false }`.

The names of the first release (`external_id`, `main_practitioner_external_id`, `copy_consent_forms`,
`practitioners` in an assistant) are still read, with a FutureWarning, until the next release.
"""

from __future__ import annotations

import json
import os
import tomllib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import IntakeQError

__all__ = [
    "AssistantSpec",
    "FormSpec",
    "Plan",
    "PlanError",
    "PlanProblem",
    "PracticeSpec",
    "PractitionerSpec",
    "load_plan",
    "parse_plan",
]

_MAX_SHOWN = 50  # a message listing 10,000 identical problems helps nobody


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """One thing wrong with a plan: where (item path), which field, and what."""

    where: str
    field: str | None
    message: str

    def __str__(self) -> str:
        spot = f"{self.where}: {self.field}" if self.field else self.where
        return f"{spot}: {self.message}" if spot else self.message


class PlanError(IntakeQError, ValueError):
    """A plan that cannot be run; `problems` holds every problem found, not just the first."""

    def __init__(self, source: str, problems: Sequence[PlanProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {p}" for p in self.problems[:_MAX_SHOWN]]
        if len(self.problems) > _MAX_SHOWN:
            lines.append(f"... and {len(self.problems) - _MAX_SHOWN} more problems")
        count = len(self.problems)
        super().__init__(f"invalid plan {source} ({count} problem{'s' * (count != 1)}):\n  " + "\n  ".join(lines))


@dataclass(frozen=True, slots=True)
class FormSpec:
    """A master form (by name) the practice must have a copy of."""

    name: str
    copy_consent_forms: bool = False


@dataclass(frozen=True, slots=True)
class PractitionerSpec:
    external_id: str
    first_name: str
    last_name: str
    email: str
    role_name: str | None = None


@dataclass(frozen=True, slots=True)
class AssistantSpec:
    """`practitioners` holds external IDs; None leaves the assistant's practitioners alone, () means all."""

    external_id: str
    name: str
    email: str
    role_name: str | None = None
    practitioners: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PracticeSpec:
    """One practice as the plan wants it; optional fields left None are neither sent nor compared."""

    external_id: str
    practice_name: str
    first_name: str
    last_name: str
    email: str
    street_address: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    forms_enabled: bool | None = None
    booking_enabled: bool | None = None
    main_practitioner_external_id: str | None = None
    practitioners: tuple[PractitionerSpec, ...] = ()
    assistants: tuple[AssistantSpec, ...] = ()
    forms: tuple[FormSpec, ...] = ()

    @property
    def item_count(self) -> int:
        return 1 + len(self.practitioners) + len(self.assistants) + len(self.forms)


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated plan. `form_refs` maps each master form name to the first place that asks for it."""

    practices: tuple[PracticeSpec, ...]
    source: str = "<plan>"
    form_refs: Mapping[str, str] = field(default_factory=dict)

    @property
    def item_count(self) -> int:
        """Items the report will list: practices, practitioners, assistants and forms."""
        return sum(p.item_count for p in self.practices)

    @property
    def form_names(self) -> frozenset[str]:
        return frozenset(self.form_refs)


# ----- loading


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a `.toml` or `.json` plan file (the extension decides)."""
    file = Path(path)
    source = str(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise PlanError(source, [PlanProblem("", None, "the plan file must end in .toml or .json")])
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise PlanError(source, [PlanProblem("", None, f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PlanError(source, [PlanProblem("", None, "the file is not UTF-8 text")]) from None
    data: Any
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PlanError(source, [PlanProblem("", None, f"not valid TOML: {exc}")]) from None
    else:
        duplicates: list[str] = []
        try:
            data = json.loads(text, object_pairs_hook=lambda pairs: _no_duplicate_keys(pairs, duplicates))
        except json.JSONDecodeError as exc:
            raise PlanError(source, [PlanProblem("", None, f"not valid JSON: {exc}")]) from None
        if duplicates:
            problems = [PlanProblem("", None, f"key {key!r} appears twice in one object") for key in duplicates]
            raise PlanError(source, problems)
    return parse_plan(data, source=source)


def _no_duplicate_keys(pairs: list[tuple[str, Any]], duplicates: list[str]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys silently; in a plan that hides a duplicate external ID.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            duplicates.append(key)
        result[key] = value
    return result


def parse_plan(data: object, *, source: str = "<plan>") -> Plan:
    """Validate plan data already parsed from TOML or JSON; raise PlanError listing every problem."""
    return _Parser(source).plan(data)


# ----- validation

_PRACTICE_TEXT = ("practice_name", "first_name", "last_name", "email")
_ADDRESS = ("street_address", "city", "state", "postal_code")
_FLAGS = ("forms_enabled", "booking_enabled")
_CONSENT = "copy_attached_consent_forms"
_PRACTICE_ID, _MAIN_ID, _PRACTITIONER_ID, _ASSISTANT_ID = (
    "external_practice_id",
    "external_practitioner_id",
    "external_practitioner_id",
    "external_assistant_id",
)
_DEFAULT_KEYS = frozenset({*_ADDRESS, *_FLAGS, "forms", _CONSENT})
_PRACTICE_KEYS = frozenset(
    {_PRACTICE_ID, *_PRACTICE_TEXT, *_ADDRESS, *_FLAGS, _MAIN_ID, "practitioners", "assistants", "forms", _CONSENT}
)
_PRACTITIONER_KEYS = frozenset({_PRACTITIONER_ID, "first_name", "last_name", "email", "role_name"})
_ASSISTANT_KEYS = frozenset({_ASSISTANT_ID, "name", "email", "role_name", "practitioner_ids"})
_FORM_KEYS = frozenset({"name", _CONSENT})
_TOP_KEYS = frozenset({"defaults", "practices"})

# The first release's field names, per kind of item: still read, with a FutureWarning, for one release.
_OLD_NAMES: dict[str, dict[str, str]] = {
    "defaults": {"copy_consent_forms": _CONSENT},
    "practice": {
        "external_id": _PRACTICE_ID,
        "main_practitioner_external_id": _MAIN_ID,
        "copy_consent_forms": _CONSENT,
    },
    "practitioner": {"external_id": _PRACTITIONER_ID},
    "assistant": {"external_id": _ASSISTANT_ID, "practitioners": "practitioner_ids"},
    "form": {"copy_consent_forms": _CONSENT},
}


def _type_name(value: object) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[PlanProblem] = []
        self.form_refs: dict[str, str] = {}
        self.renamed: dict[tuple[str, str], tuple[str, int]] = {}  # (old, new) -> (first place, count)

    def modernise(self, where: str, item: dict[str, Any], kind: str) -> dict[str, Any]:
        """The item with the first release's field names replaced by today's (noted, to warn once per name)."""
        old_names = _OLD_NAMES[kind]
        if not any(old in item for old in old_names):
            return item
        item = dict(item)
        for old, new in old_names.items():
            if old not in item:
                continue
            if new in item:
                self.problem(where, old, f"the old name of {new}, which is also given: keep {new} only")
                del item[old]
                continue
            item[new] = item.pop(old)
            first, count = self.renamed.get((old, new), (where or "defaults", 0))
            self.renamed[(old, new)] = (first, count + 1)
        return item

    def warn_renamed(self) -> None:
        for (old, new), (first, count) in self.renamed.items():
            others = f" and {count - 1} more" if count > 1 else ""
            warnings.warn(
                f"{self.source}: {first}{others}: `{old}` is now `{new}` (the facade's name); "
                "the old name is read until the next release",
                FutureWarning,
                stacklevel=4,
            )

    def problem(self, where: str, field: str | None, message: str) -> None:
        self.problems.append(PlanProblem(where, field, message))

    def plan(self, data: object) -> Plan:
        if not isinstance(data, dict):
            self.problem("", None, f"the plan must be a table/object, not {_type_name(data)}")
            raise PlanError(self.source, self.problems)
        self.unknown_keys("", data, _TOP_KEYS)
        defaults = self.defaults(data.get("defaults"))
        practices: list[PracticeSpec] = []
        seen: dict[str, str] = {}
        if "practices" not in data:
            self.problem("", "practices", "required field is missing")
        for where, ext, item in self.keyed_items("practices", data.get("practices"), "practice", _PRACTICE_ID):
            spec = self.practice(where, ext, item, defaults)
            if ext is not None:
                if ext in seen:
                    self.problem(where, _PRACTICE_ID, f"duplicate practice external ID (also {seen[ext]})")
                else:
                    seen[ext] = where
            if spec is not None:
                practices.append(spec)
        self.warn_renamed()
        if self.problems:
            raise PlanError(self.source, self.problems)
        return Plan(tuple(practices), self.source, self.form_refs)

    def unknown_keys(self, where: str, item: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for key in item:
            if key not in allowed:
                self.problem(where, str(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def keyed_items(
        self, where: str, value: object, kind: str, id_key: str
    ) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        """Items given as a list (each with its external ID in `id_key`) or as a table keyed by external ID.

        Yields (location, external ID or None if missing/bad, the item's fields, under today's names).
        """
        if value is None:
            return
        if isinstance(value, dict):
            entries: list[tuple[object, object]] = [(key, item) for key, item in value.items()]
        elif isinstance(value, list):
            entries = [(None, item) for item in value]
        else:
            self.problem("", where, f"must be a list or a table keyed by external ID, not {_type_name(value)}")
            return
        for index, (key, item) in enumerate(entries):
            label = f"{where}[{index}]"
            if not isinstance(item, dict):
                self.problem(
                    label if key is None else f"{label} ({key})", None, f"must be a table, not {_type_name(item)}"
                )
                continue
            item = self.modernise(label if key is None else f"{label} ({key})", item, kind)
            if key is not None:
                if id_key in item and item[id_key] != key:
                    self.problem(f"{label} ({key})", id_key, "differs from the key it is listed under")
                fields = {**item, id_key: key}
            else:
                fields = dict(item)
            ext = fields.get(id_key)
            if isinstance(ext, str) and ext.strip() and _encodable(ext):
                yield f"{label} ({ext})", ext, fields
            elif isinstance(ext, str) and ext.strip():
                self.problem(label, id_key, "is not valid text (it holds a lone surrogate)")
                yield label, None, fields
            else:
                if id_key not in fields:
                    self.problem(label, id_key, "required field is missing")
                else:
                    self.problem(label, id_key, f"must be a non-empty string, not {_type_name(ext)}")
                yield label, None, fields

    def text(self, where: str, item: Mapping[str, Any], name: str, *, required: bool) -> str | None:
        value = item.get(name)
        if value is None:
            if required:
                self.problem(where, name, "required field is missing")
            return None
        if not isinstance(value, str):
            self.problem(where, name, f"must be a string, not {_type_name(value)}")
            return None
        if not value.strip():
            self.problem(where, name, "must not be empty")
            return None
        if not _encodable(value):  # JSON allows "\ud800"; it could never be sent, so every run would fail
            self.problem(where, name, "is not valid text (it holds a lone surrogate)")
            return None
        if name == "email" and "@" not in value:
            self.problem(where, name, "is not an email address")
        return value

    def flag(self, where: str, item: Mapping[str, Any], name: str) -> bool | None:
        value = item.get(name)
        if value is not None and not isinstance(value, bool):
            self.problem(where, name, f"must be true or false, not {_type_name(value)}")
            return None
        return value

    def defaults(self, value: object) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem("defaults", None, f"must be a table, not {_type_name(value)}")
            return {}
        value = self.modernise("defaults", value, "defaults")
        self.unknown_keys("defaults", value, _DEFAULT_KEYS)
        result: dict[str, Any] = {}
        for name in _ADDRESS:
            result[name] = self.text("defaults", value, name, required=False)
        for name in (*_FLAGS, _CONSENT):
            result[name] = self.flag("defaults", value, name)
        if "forms" in value:
            result["forms"] = self.forms("defaults", value["forms"], bool(result[_CONSENT]))
        return result

    def forms(self, where: str, value: object, copy_consent: bool) -> tuple[FormSpec, ...]:
        if not isinstance(value, list):
            self.problem(where, "forms", f"must be a list of master form names, not {_type_name(value)}")
            return ()
        specs: list[FormSpec] = []
        names: set[str] = set()
        for index, entry in enumerate(value):
            spot = f"{where}.forms[{index}]" if where else f"forms[{index}]"
            name: str | None
            consent = copy_consent
            if isinstance(entry, dict):
                entry = self.modernise(spot, entry, "form")
                self.unknown_keys(spot, entry, _FORM_KEYS)
                name = self.text(spot, entry, "name", required=True)
                flag = self.flag(spot, entry, _CONSENT)
                consent = consent if flag is None else flag
            elif isinstance(entry, str) and entry.strip() and _encodable(entry):
                name = entry
            else:
                self.problem(spot, None, f"must be a form name or a table with `name`, not {_type_name(entry)}")
                continue
            if name is None:
                continue
            if name in names:
                self.problem(spot, None, f"form {name!r} is listed twice")
                continue
            names.add(name)
            self.form_refs.setdefault(name, spot)
            specs.append(FormSpec(name, consent))
        return tuple(specs)

    def practice(
        self, where: str, ext: str | None, item: dict[str, Any], defaults: dict[str, Any]
    ) -> PracticeSpec | None:
        count = len(self.problems)
        self.unknown_keys(where, item, _PRACTICE_KEYS)
        texts = {name: self.text(where, item, name, required=True) for name in _PRACTICE_TEXT}
        address = {name: self.text(where, item, name, required=False) for name in _ADDRESS}
        flags = {name: self.flag(where, item, name) for name in _FLAGS}
        for name in _ADDRESS:
            if address[name] is None and name not in item:
                address[name] = defaults.get(name)
        for name in _FLAGS:
            if flags[name] is None and name not in item:
                flags[name] = defaults.get(name)
        main = self.text(where, item, _MAIN_ID, required=False)
        consent = self.flag(where, item, _CONSENT)
        copy_consent = bool(defaults.get(_CONSENT)) if consent is None else consent
        if "forms" in item:
            forms = self.forms(where, item["forms"], copy_consent)
        elif consent is not None and "forms" in defaults:
            forms = tuple(FormSpec(f.name, consent) for f in defaults["forms"])
        else:
            forms = defaults.get("forms", ())

        practitioners: list[PractitionerSpec] = []
        known: dict[str, str] = {}
        for spot, pid, fields in self.keyed_items(
            "practitioners", item.get("practitioners"), "practitioner", _PRACTITIONER_ID
        ):
            spot = f"{where}.{spot}"
            self.unknown_keys(spot, fields, _PRACTITIONER_KEYS)
            first = self.text(spot, fields, "first_name", required=True)
            last = self.text(spot, fields, "last_name", required=True)
            email = self.text(spot, fields, "email", required=True)
            role = self.text(spot, fields, "role_name", required=False)
            if pid is None:
                continue
            if pid in known:
                self.problem(spot, _PRACTITIONER_ID, f"duplicate practitioner external ID (also {known[pid]})")
                continue
            known[pid] = spot
            if first and last and email:
                practitioners.append(PractitionerSpec(pid, first, last, email, role))

        assistants: list[AssistantSpec] = []
        seen_assistants: dict[str, str] = {}
        reachable = set(known) | ({main} if main else set())
        for spot, aid, fields in self.keyed_items("assistants", item.get("assistants"), "assistant", _ASSISTANT_ID):
            spot = f"{where}.{spot}"
            self.unknown_keys(spot, fields, _ASSISTANT_KEYS)
            shown = self.text(spot, fields, "name", required=True)
            email = self.text(spot, fields, "email", required=True)
            role = self.text(spot, fields, "role_name", required=False)
            refs = self.refs(spot, fields.get("practitioner_ids"), reachable)
            if aid is None:
                continue
            if aid in seen_assistants:
                self.problem(spot, _ASSISTANT_ID, f"duplicate assistant external ID (also {seen_assistants[aid]})")
                continue
            seen_assistants[aid] = spot
            if shown and email:
                assistants.append(AssistantSpec(aid, shown, email, role, refs))

        if ext is None or len(self.problems) > count:
            return None
        return PracticeSpec(
            external_id=ext,
            practice_name=texts["practice_name"] or "",
            first_name=texts["first_name"] or "",
            last_name=texts["last_name"] or "",
            email=texts["email"] or "",
            street_address=address["street_address"],
            city=address["city"],
            state=address["state"],
            postal_code=address["postal_code"],
            forms_enabled=flags["forms_enabled"],
            booking_enabled=flags["booking_enabled"],
            main_practitioner_external_id=main,
            practitioners=tuple(practitioners),
            assistants=tuple(assistants),
            forms=forms,
        )

    def refs(self, where: str, value: object, known: set[str]) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problem(where, "practitioner_ids", "must be a list of practitioner external IDs")
            return None
        for ref in value:
            if ref not in known:
                self.problem(where, "practitioner_ids", f"{ref!r} is not a practitioner of this practice in the plan")
        return tuple(dict.fromkeys(value))
