"""The spec is valid and complete, and the generated package is exactly what the generator writes."""

from __future__ import annotations

import importlib
import inspect
import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from openapi_spec_validator import validate

from generator.__main__ import SPEC, TARGET, differences, generate
from intakeq_partner._generated import models

METHODS = ("get", "post", "put", "delete")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return loaded


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, item in spec["paths"].items() for m, op in item.items() if m in METHODS]


def test_spec_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)


def test_spec_has_no_accidental_null_keys(spec: dict[str, Any]) -> None:
    # A comma inside a YAML flow mapping silently splits a description into keys with null values.
    def walk(node: Any, where: str) -> list[str]:
        if isinstance(node, dict):
            found = [f"{where}/{k}" for k, v in node.items() if v is None]
            return found + [x for k, v in node.items() for x in walk(v, f"{where}/{k}")]
        if isinstance(node, list):
            return [x for i, v in enumerate(node) for x in walk(v, f"{where}[{i}]")]
        return []

    assert walk(spec, "") == []


def test_operation_ids_are_unique_and_every_operation_documents_the_common_failures(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []
    for _, _, op in operations(spec):
        assert {"401", "429", "5XX"} <= set(op["responses"]), op["operationId"]


def test_committed_output_is_current(tmp_path: Path) -> None:
    generate(tmp_path / "fresh")
    assert differences(tmp_path / "fresh", TARGET) == []


def test_a_hand_edit_is_detected(tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(TARGET, edited, ignore=shutil.ignore_patterns("__pycache__"))
    model = edited / "models" / "practice.py"
    model.write_text(model.read_text() + "# tweak\n")
    problems = differences(TARGET, edited)
    assert len(problems) == 1 and problems[0].startswith("differs: models/practice.py")


def test_one_new_field_changes_only_its_model(tmp_path: Path) -> None:
    changed = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    properties = changed["components"]["schemas"]["Practice"]["properties"]
    properties["AddedByTheTest"] = {"type": ["string", "null"]}
    properties["Class"] = {"type": ["string", "null"]}  # a keyword: the one case that keeps a trailing "_"
    properties["Format"] = {"type": ["string", "null"]}  # a builtin's name: kept as it is
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(changed, sort_keys=False))
    generate(tmp_path / "out", spec=spec_path)
    problems = differences(tmp_path / "out", TARGET)
    assert [p.splitlines()[0] for p in problems] == ["differs: models/practice.py"]
    source = (tmp_path / "out" / "models" / "practice.py").read_text()
    assert (
        "added_by_the_test: str | None" in source and "class_: str | None" in source and "format: str | None" in source
    )


def test_generated_names_carry_no_trailing_underscore() -> None:
    classes = [getattr(models, name) for name in models.__all__]
    fields = [(cls.__name__, f.name) for cls in classes for f in attrs.fields(cls)]
    assert ("FormTemplate", "type") in fields
    assert [name for name in fields if name[1].endswith("_")] == []
    for package in TARGET.joinpath("api").iterdir():
        for module_path in package.glob("*.py"):
            if module_path.stem == "__init__":
                continue
            module = importlib.import_module(f"intakeq_partner._generated.api.{package.name}.{module_path.stem}")
            assert not [p for p in inspect.signature(module.build_request).parameters if p.endswith("_")]
