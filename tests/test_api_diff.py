"""`make api-diff`: each kind of spec change is reported and marked breaking or not; breaks need a CHANGELOG entry."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from generator import api_diff, spec
from generator.api_diff import Change

SPEC = spec.load()
PRACTITIONER = "#/components/schemas/Practitioner"


def changed(edit: Any) -> list[str]:
    new = copy.deepcopy(SPEC)
    edit(new)
    return [c.line() for c in api_diff.spec_changes(SPEC, new)]


def schema(s: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = s["components"]["schemas"][name]
    return found


def test_an_unchanged_spec_has_no_changes() -> None:
    assert api_diff.spec_changes(SPEC, copy.deepcopy(SPEC)) == []


# The changes below use names no version of the spec will have (`...ByTheTest`), so that a maintainer making the
# same kind of change for real does not break these tests.


def test_a_new_optional_response_field_is_not_breaking() -> None:
    def edit(s: dict[str, Any]) -> None:
        schema(s, "Practice")["properties"]["AddedByTheTest"] = {"type": ["string", "null"]}

    assert changed(edit) == [
        "ok        field added: Practice.AddedByTheTest: string | null "
        "(response of create_practice, update_practice, list_practices)"
    ]


def test_a_new_endpoint_is_not_breaking() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["paths"]["/api/v1/practitioners/{practitionerId}/addedByTheTest"] = {
            "get": {
                "operationId": "added_by_the_test",
                "tags": ["practitioners"],
                "security": [{"practiceKey": []}],
                "responses": {"200": {"content": {"application/json": {"schema": {"$ref": PRACTITIONER}}}}},
            }
        }

    assert changed(edit) == [
        "ok        operation added: added_by_the_test "
        "(GET /api/v1/practitioners/{practitionerId}/addedByTheTest, practice key)"
    ]


def test_a_renamed_and_a_removed_request_field_are_breaking() -> None:
    old = copy.deepcopy(SPEC)
    schema(old, "PractitionerCreate")["properties"]["OldNameByTheTest"] = {"type": "string"}
    schema(old, "AssistantUpdate")["properties"]["RemovedByTheTest"] = {"type": "string"}
    new = copy.deepcopy(SPEC)
    schema(new, "PractitionerCreate")["properties"]["NewNameByTheTest"] = {"type": "string"}

    assert [c.line() for c in api_diff.spec_changes(old, new)] == [
        "BREAKING  possible rename: PractitionerCreate.OldNameByTheTest -> PractitionerCreate.NewNameByTheTest "
        "(request of create_practitioner)",
        "BREAKING  field removed: AssistantUpdate.RemovedByTheTest (request of update_assistant)",
    ]


def test_required_ness_and_types_break_in_the_direction_that_matters() -> None:
    def edit(s: dict[str, Any]) -> None:
        schema(s, "PractitionerCreate")["required"].append("RoleName")  # a caller must now send it: breaks
        schema(s, "PracticeCreate")["required"].remove("Email")  # a caller may now leave it out: fine
        schema(s, "Practice")["required"] = []  # Id may now be missing from an answer: breaks
        schema(s, "IntakeCreate")["properties"]["ClientName"] = {"type": ["string", "null"]}  # accepts more: fine
        schema(s, "Practitioner")["properties"]["Email"] = {"type": "string"}  # promises more: fine
        schema(s, "Assistant")["properties"]["Email"] = {"type": ["integer", "null"]}  # another type: breaks
        schema(s, "PractitionerCreate")["properties"]["Title"] = {"type": "string"}
        schema(s, "PractitionerCreate")["required"].append("Title")  # a new required request field: breaks

    lines = changed(edit)
    assert sorted(lines) == sorted(
        [
            "BREAKING  now required: PractitionerCreate.RoleName (request of create_practitioner)",
            "BREAKING  field added: required PractitionerCreate.Title: string (request of create_practitioner)",
            "ok        now optional: PracticeCreate.Email (request of create_practice)",
            "BREAKING  now optional: Practice.Id (response of create_practice, update_practice, list_practices)",
            "ok        type changed: IntakeCreate.ClientName: string -> string | null (request of create_intake)",
            "ok        type changed: Practitioner.Email: string | null -> string "
            "(response of create_practitioner, update_practitioner, list_practitioners)",
            "BREAKING  type changed: Assistant.Email: string | null -> integer | null "
            "(response of create_assistant, update_assistant, list_assistants)",
        ]
    )


def test_operation_and_parameter_changes() -> None:
    def edit(s: dict[str, Any]) -> None:
        paths = s["paths"]
        paths["/api/partner/practice"]["get"]["operationId"] = "find_practices"
        del paths["/api/partner/masterForms"]
        paths["/api/partner/practice/{practiceId}/forms"]["get"]["security"] = [{"practiceKey": []}]
        ephemeral = paths["/api/partner/practice/{practiceId}/ephemeral"]["get"]["parameters"]
        ephemeral[1] = {**ephemeral[1], "required": True}
        ephemeral.append({"name": "path", "in": "query", "schema": {"type": "string"}})
        paths["/api/v1/practitioners"]["get"]["parameters"] = []
        paths["/api/v1/practitioners/{practitionerId}/disable"]["post"]["x-idempotent"] = False

    lines = changed(edit)
    assert lines[:2] == [
        "BREAKING  operation renamed: list_practices -> find_practices",
        "BREAKING  operation removed: list_master_forms (GET /api/partner/masterForms)",
    ]
    assert "BREAKING  key changed: list_practice_forms: partner key -> practice key" in lines
    assert "BREAKING  parameter now required: get_ephemeral_token(userId)" in lines
    assert "ok        optional query parameter added: get_ephemeral_token(path)" in lines
    assert "BREAKING  query parameter removed: list_practitioners(includeInactive)" in lines
    assert "ok        retry policy: disable_practitioner is no longer safe to repeat (x-idempotent)" in lines


CHANGELOG = """# Changelog

## [Unreleased]

### Removed
- `AssistantUpdate.LastName`: IntakeQ no longer accepts it.

## [0.1.0]
- `PractitionerCreate.RoleName` was fine here, in an older release.
"""


def test_every_wire_change_and_every_break_must_be_named_in_the_unreleased_section() -> None:
    removed = Change("field removed: AssistantUpdate.LastName", ("AssistantUpdate", "LastName"), breaking=True)
    renamed = Change("possible rename: ...", ("PractitionerCreate", "RoleName"), breaking=True)
    added = Change("field added: Practice.TimeZone", ("Practice", "TimeZone"), breaking=False)
    assert api_diff.missing_from_changelog([removed, renamed, added], CHANGELOG) == [renamed, added]
    assert api_diff.missing_from_changelog([added], CHANGELOG.replace("`AssistantUpdate", "`Practice.TimeZone`")) == []
    assert api_diff.missing_from_changelog([removed], CHANGELOG.replace("## [Unreleased]", "## [0.2.0]")) == [removed]
    # A name inside a longer one does not count.
    partial = Change("python: ...", ("Assistants.update",), breaking=True)
    longer = "## [Unreleased]\n- `Assistants.update_all` changed\n"
    assert api_diff.missing_from_changelog([partial], longer) == [partial]


def write_package(root: Path, source: str) -> Path:
    package = root / "src" / api_diff.PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    return root / "src"


def test_the_python_api_is_compared_with_griffe(tmp_path: Path) -> None:
    old = write_package(tmp_path / "old", "class Things:\n    def update(self, *, name: str, role: str) -> None: ...\n")
    new = write_package(tmp_path / "new", "class Things:\n    def update(self, *, name: str) -> None: ...\n")
    [change] = api_diff.python_changes(old, new)
    assert change.breaking and change.names == ("Things.update",)
    assert "role" in change.what and "removed" in change.what.lower()
    assert "\x1b" not in change.what  # no terminal colours in reports
    assert api_diff.python_changes(old, old) == []


def test_every_change_since_the_base_is_in_the_changelog() -> None:
    base = api_diff.default_base()
    if base is None:
        pytest.skip("not a git checkout with a release tag, origin/main or main to compare with")
    changes = api_diff.changes_since(base)
    missing = api_diff.missing_from_changelog(changes, api_diff.CHANGELOG.read_text(encoding="utf-8"))
    assert not missing, (
        f"changes since {base} that CHANGELOG.md's [Unreleased] section does not name "
        "(add an entry that mentions each name in parentheses):\n"
        + "\n".join(f"  {c.what}  ({', '.join(c.names)})" for c in missing)
    )
