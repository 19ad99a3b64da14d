"""`make doc-check`: the spec against the API document, on small documents written for these tests."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator import doc_check, spec

FIXTURES = Path(__file__).parent / "fixtures" / "doc"


def widget_spec() -> dict[str, Any]:
    """A spec that matches tests/fixtures/doc/widgets.* exactly, saying where it goes beyond the document."""
    key: dict[str, list[dict[str, list[str]]]] = {"partner": [{"partnerKey": []}], "practice": [{"practiceKey": []}]}
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/WidgetCreate"}}}}
    answer = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}}}
    return {
        "openapi": "3.1.0",
        "x-omitted": [{"section": "Archive Widget", "reason": "named in the contents only"}],
        "paths": {
            "/api/partner/widget": {
                "post": {
                    "operationId": "create_widget",
                    "tags": ["widgets"],
                    "security": key["partner"],
                    "requestBody": body,
                    "responses": {"200": answer},
                },
                "get": {
                    "operationId": "list_widgets",
                    "tags": ["widgets"],
                    "security": key["partner"],
                    "parameters": [
                        {"name": "name", "in": "query", "schema": {"type": "string"}},
                        {"name": "showArchived", "in": "query", "schema": {"type": "boolean"}},
                    ],
                    "responses": {"200": {"description": "none"}},
                },
            },
            "/api/v1/widgets/{widgetId}": {
                "delete": {
                    "operationId": "delete_widget",
                    "tags": ["widgets"],
                    "security": key["practice"],
                    "parameters": [{"name": "widgetId", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "done"}},
                }
            },
        },
        "components": {
            "schemas": {
                "WidgetCreate": {
                    "type": "object",
                    "required": ["Name"],
                    "properties": {"Name": {"type": "string"}, "Colour": {"type": "string"}},
                },
                "Widget": {
                    "type": "object",
                    "properties": {
                        "Id": {"type": "string"},
                        "Name": {"type": "string"},
                        "Colour": {"type": "string"},
                        "Weight": {"type": "integer", "x-source": "the vendor's own client"},
                    },
                },
            }
        },
    }


def problems(changed: dict[str, Any], fixture: str = "widgets.txt") -> list[str]:
    document = doc_check.parse_document(doc_check.read_document(FIXTURES / fixture))
    return doc_check.compare(document, changed)


@pytest.mark.parametrize("fixture", ["widgets.txt", "widgets.html"])
def test_the_document_is_read_the_same_saved_as_text_or_html(fixture: str) -> None:
    document = doc_check.parse_document(doc_check.read_document(FIXTURES / fixture))
    found = {(op.method, op.path): (op.key, op.query, op.fields) for op in document.operations}
    assert found == {
        ("POST", "/api/partner/widget"): ("partner", set(), {"Id", "Name", "Colour"}),
        # The page wraps long URLs; the pieces are joined again.
        ("GET", "/api/partner/widget"): ("partner", {"name", "showArchived"}, set()),
        ("DELETE", "/api/v1/widgets/{}"): ("practice", set(), set()),
    }
    assert document.undescribed == ["Archive Widget"]
    assert problems(widget_spec(), fixture) == []


def test_what_the_document_has_and_the_spec_lacks_is_named() -> None:
    changed = widget_spec()
    del changed["paths"]["/api/v1/widgets/{widgetId}"]
    del changed["components"]["schemas"]["Widget"]["properties"]["Colour"]
    changed["components"]["schemas"]["WidgetCreate"]["properties"].pop("Colour")
    changed["paths"]["/api/partner/widget"]["get"]["parameters"].pop()
    changed["x-omitted"] = [{"section": "Something else", "reason": "r"}]
    assert sorted(problems(changed)) == [
        "create_widget: document's example has field 'Colour'; the spec does not",
        "document has operation DELETE /api/v1/widgets/{} ('Remove Widget'); the spec does not",
        "document: section 'Archive Widget' is in the contents but never described",
        "list_widgets: document has query parameter 'showArchived'; the spec does not",
    ]
    changed["x-omitted"] = [
        {"section": "Archive Widget", "reason": "r"},
        {"operation": "DELETE /api/v1/widgets/{}", "reason": "r"},
        {"operation": "create_widget", "field": "Colour", "reason": "r"},
        {"operation": "list_widgets", "parameter": "showArchived", "reason": "r"},
    ]
    assert problems(changed) == []
    changed["x-omitted"].append({"section": "No reason given"})
    with pytest.raises(ValueError, match="without a reason"):
        problems(changed)


def test_what_the_spec_has_beyond_the_document_needs_a_stated_source() -> None:
    changed = widget_spec()
    schemas = changed["components"]["schemas"]
    del schemas["Widget"]["properties"]["Weight"]["x-source"]
    schemas["WidgetCreate"]["properties"]["Size"] = {"type": "integer"}
    changed["paths"]["/api/partner/widget"]["get"]["parameters"].append(
        {"name": "page", "in": "query", "schema": {"type": "integer"}}
    )
    changed["paths"]["/api/partner/widget"]["put"] = {
        "operationId": "update_widget",
        "tags": ["widgets"],
        "security": [{"partnerKey": []}],
        "responses": {"200": {"description": "done"}},
    }
    assert sorted(problems(changed)) == [
        "list_widgets: spec has query parameter 'page' the document does not show",
        "spec has field Widget.Weight that no example of the document shows",
        "spec has field WidgetCreate.Size that no example of the document shows",
        "spec has operation update_widget (PUT /api/partner/widget) the document does not show",
    ]
    schemas["Widget"]["x-assumption"] = "the whole shape is ours"
    schemas["WidgetCreate"]["properties"]["Size"]["x-source"] = "the vendor's own client"
    changed["paths"]["/api/partner/widget"]["get"]["parameters"][-1]["x-source"] = "the vendor's own client"
    changed["paths"]["/api/partner/widget"]["put"]["x-assumption"] = "we expect it to exist"
    assert problems(changed) == []


def test_a_key_the_document_gives_differently_is_reported() -> None:
    changed = copy.deepcopy(widget_spec())
    changed["paths"]["/api/v1/widgets/{widgetId}"]["delete"]["security"] = [{"partnerKey": []}]
    assert problems(changed) == ["delete_widget: the document sends the practice key, the spec the partner key"]


def test_the_command_fails_on_a_problem_and_on_an_unreadable_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = widget_spec()
    del changed["x-omitted"]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(changed))
    assert doc_check.main([str(FIXTURES / "widgets.html"), "--spec", str(spec_file)]) == 1
    assert "section 'Archive Widget'" in capsys.readouterr().out
    assert doc_check.main([str(tmp_path / "missing.html"), "--spec", str(spec_file)]) == 2
    (tmp_path / "empty.txt").write_text("nothing here\n")
    assert doc_check.main([str(tmp_path / "empty.txt"), "--spec", str(spec_file)]) == 2


DOCUMENT_PATH = Path("shared", "reference", "intakeq-partner-api.txt")


def shared_document(root: Path = spec.ROOT, env: Mapping[str, str] = os.environ) -> Path | None:
    """The copy of IntakeQ's page the project works from.

    $INTAKEQ_API_DOC when set (it must then exist); else `shared/` beside the repository (`<repo>/../shared`, as
    in CI, which clones the repository with a copy of shared/ next to it), then beside a folder further up (a
    git worktree nested under the checkout's parent). None when there is none.
    """
    explicit = env.get("INTAKEQ_API_DOC", "")
    if explicit:
        return Path(explicit)
    return next((p / DOCUMENT_PATH for p in root.parents if (p / DOCUMENT_PATH).is_file()), None)


def test_the_document_is_looked_up_beside_the_repository_root_or_where_the_environment_says(tmp_path: Path) -> None:
    repo = tmp_path / "clone"
    repo.mkdir()
    assert shared_document(repo, {}) is None
    beside = tmp_path / DOCUMENT_PATH
    beside.parent.mkdir(parents=True)
    beside.write_text("x\n")
    assert shared_document(repo, {}) == beside
    assert shared_document(repo, {"INTAKEQ_API_DOC": str(tmp_path / "elsewhere.txt")}) == tmp_path / "elsewhere.txt"


def test_the_spec_is_clean_against_the_shared_copy_of_the_document() -> None:
    document = shared_document()
    if document is None:
        # In CI the copy is always provided: a missing one is a broken setup, not a reason to drop the check.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but no API document: set INTAKEQ_API_DOC or put it at ../{DOCUMENT_PATH.as_posix()}")
        pytest.skip("no copy of the API document here (set INTAKEQ_API_DOC)")
    assert document.is_file(), f"INTAKEQ_API_DOC names no file: {document}"
    parsed = doc_check.parse_document(doc_check.read_document(document))
    assert doc_check.compare(parsed, spec.load()) == []
    # Every operation the document shows is one the spec has: nothing was skipped by the parser.
    addresses = {(op.method, doc_check.normalise(op.path)) for op in spec.operations(spec.load()).values()}
    assert {(op.method, op.path) for op in parsed.operations} <= addresses
