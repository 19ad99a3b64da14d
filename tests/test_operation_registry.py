"""One operation registry, the spec: every other list of operations is compared with it as a set of operationIds.

The generated modules, the facade methods (through README's table, one documented method per operation), the
fake's routes and README itself must each name exactly the spec's operations; a failure names what is missing
or extra, never just a count. Policy (key scope, idempotency, secret fields) is read from the spec too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

import intakeq_partner._generated.api as generated_api
from generator import spec as specs
from intakeq_partner import PartnerClient, partner, practice
from intakeq_partner.testing import FakeIntakeQ

SPEC = specs.load()
OPERATIONS = specs.operations(SPEC)
README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(
    r"^\| `(?P<op>\w+)` \| `(?P<method>[A-Z]+) (?P<path>\S+)` \| (?P<key>\w+) \| "
    r"`(?P<client>partner|practice)\.(?P<resource>\w+)\.(?P<method_name>\w+)\(\)` \|$",
    re.M,
)


def difference(what: str, have: set[str]) -> list[str]:
    """What `what` lacks and has beyond the spec's operationIds, by name."""
    want = set(OPERATIONS)
    return [f"{what} lacks {name}" for name in sorted(want - have)] + [
        f"{what} has {name}, which the spec does not" for name in sorted(have - want)
    ]


def generated_modules() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.walk_packages(generated_api.__path__, f"{generated_api.__name__}."):
        module = importlib.import_module(info.name)
        if hasattr(module, "OPERATION_ID"):
            found[module.OPERATION_ID] = module
    return found


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_operation_has_one_generated_module_carrying_the_spec_policy() -> None:
    modules = generated_modules()
    assert difference("src/intakeq_partner/_generated/api", set(modules)) == []
    for op_id, op in OPERATIONS.items():
        module = modules[op_id]
        assert module.__name__ == op.module
        assert (module.METHOD, normalise(module.PATH)) == (op.method, normalise(op.path)), op_id
        assert module.KEY_SCOPE == op.scope, f"{op_id}: scope must come from its `security`"
        assert module.IDEMPOTENT is (True if op.idempotent else None), f"{op_id}: x-idempotent"
        assert set(module.QUERY) == {p.name for p in op.params if p.location == "query"}, op_id
        body = module.BODY_MODEL.__name__ if module.BODY_MODEL else None
        assert body == op.request, op_id


def test_every_operation_has_a_security_scheme_that_names_one_key() -> None:
    # specs.operations raises for an operation without exactly one of the two keys; the scopes it read are these.
    assert {op.scope for op in OPERATIONS.values()} == {"partner", "practice"}


def test_secret_fields_come_from_the_spec_and_stay_out_of_reprs() -> None:
    from intakeq_partner._generated import models

    marked = specs.secret_fields(SPEC)
    assert marked, "the spec marks no field x-secret"
    for schema, node in specs.schemas(SPEC).items():
        if "properties" not in node:
            continue  # not an object: no model class
        cls = getattr(models, schema)
        hidden = {f.metadata["wire"] for f in attrs.fields(cls) if not f.repr and "wire" in f.metadata}
        assert hidden == set(marked.get(schema, [])), schema


def readme_rows() -> dict[str, dict[str, str]]:
    return {m["op"]: m.groupdict() for m in ROW.finditer(README.read_text(encoding="utf-8"))}


def test_readme_lists_every_operation_with_its_request_and_key() -> None:
    rows = readme_rows()
    listed = [m["op"] for m in ROW.finditer(README.read_text(encoding="utf-8"))]
    assert sorted({op for op in listed if listed.count(op) > 1}) == [], "one facade method per operation"
    assert difference("README's operation table", set(rows)) == []
    wrong = [
        f"{op_id}: README says {row['method']} {row['path']} with the {row['key']} key"
        for op_id, row in rows.items()
        if (row["method"], row["path"], row["key"]) != (OPERATIONS[op_id].method, OPERATIONS[op_id].path,
                                                        OPERATIONS[op_id].scope)
    ]  # fmt: skip
    assert wrong == []


def _names_used(cls: type, method: str, seen: set[str] | None = None) -> set[str]:
    """Names a method's body uses, following the class's own private helpers (`self._x(...)`) and the functions
    of its module that it calls."""
    seen = seen if seen is not None else set()
    if method in seen:
        return set()
    seen.add(method)
    module = inspect.getmodule(cls)
    target = getattr(cls, method, None) if not method.startswith("module:") else getattr(module, method[7:], None)
    if target is None:
        return set()
    tree = ast.parse(textwrap.dedent(inspect.getsource(target)))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr.startswith("_")
        ):
            names |= _names_used(cls, node.attr, seen)
    for name in list(names):
        function = getattr(module, name, None)
        if inspect.isfunction(function) and inspect.getmodule(function) is module:
            names |= _names_used(cls, f"module:{name}", seen)
    return names


@pytest.fixture
async def clients() -> AsyncIterator[dict[str, Any]]:
    async with PartnerClient("registry-test-key", base_url="http://127.0.0.1:9") as client:
        yield {"partner": client, "practice": client.practice("P1")}


async def test_each_operation_is_sent_by_the_documented_facade_method(clients: dict[str, Any]) -> None:
    problems = []
    modules = {"partner": partner, "practice": practice}
    for op_id, row in readme_rows().items():
        label = f"{row['client']}.{row['resource']}.{row['method_name']}()"
        resource = getattr(clients[row["client"]], row["resource"], None)
        method = getattr(resource, row["method_name"], None)
        if method is None:
            problems.append(f"{op_id}: README names {label}, which does not exist")
            continue
        if not inspect.iscoroutinefunction(method) or not inspect.getdoc(method):
            problems.append(f"{op_id}: {label} must be a documented async method")
        if row["client"] != OPERATIONS[op_id].scope:
            problems.append(f"{op_id}: needs the {OPERATIONS[op_id].scope} key but README puts it on {row['client']}")
        cls = type(resource)
        assert inspect.getmodule(cls) is modules[row["client"]]
        if op_id not in _names_used(cls, row["method_name"]):
            problems.append(f"{op_id}: {label} does not call the generated {op_id}")
    assert problems == []


def test_the_fake_implements_every_operation() -> None:
    fake = FakeIntakeQ("registry-test-key")
    assert difference("the fake (src/intakeq_partner/testing/_handlers.py)", set(fake.app.implemented)) == []
    routes = {(r.method, r.template) for r in fake.app.router.routes if r.operation is not None}
    assert routes == {(op.method, op.path) for op in OPERATIONS.values()}
