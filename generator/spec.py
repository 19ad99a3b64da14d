"""The spec as data: its operations, the policy each carries, and the fields of the bodies they send and receive.

One reader of openapi/intakeq-partner.yaml shared by the generator, `make api-diff`, `make doc-check` and the
coverage tests, so that all of them agree on what an operation is and what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "intakeq-partner.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Which key each security scheme stands for.
SCOPES = {"partnerKey": "partner", "practiceKey": "practice"}
# Extensions that say where a part of the spec comes from when the API document does not show it.
SOURCE_MARKS = ("x-source", "x-assumption")

Spec = dict[str, Any]


def load(path: Path = SPEC) -> Spec:
    loaded: Spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def loads(text: str) -> Spec:
    loaded: Spec = yaml.safe_load(text)
    return loaded


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # "path" or "query"
    required: bool
    type: str
    raw: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Operation:
    """One operation and its policy, as the spec states it."""

    id: str
    method: str  # upper case
    path: str
    tag: str
    scope: str  # "partner" or "practice", from the operation's `security`
    idempotent: bool  # `x-idempotent`: safe to repeat, so retried even when it is a POST
    params: tuple[Param, ...]
    request: str | None  # schema name of the JSON body
    response: str | None  # schema name of the 200 body
    response_is_list: bool
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def module(self) -> str:
        """The generated module that implements it."""
        return f"intakeq_partner._generated.api.{self.tag}.{self.id}"


@dataclass(frozen=True)
class Field:
    """One property of a schema: its wire name, whether it is required, and its type in words."""

    schema: str
    name: str
    required: bool
    type: str
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def secret(self) -> bool:
        """`x-secret`: a credential, kept out of reprs and error excerpts."""
        return bool(self.raw.get("x-secret"))


def ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def resolve(spec: Spec, node: dict[str, Any]) -> dict[str, Any]:
    """Follow one local `$ref` (parameters, responses); schemas are left as references."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    resolved: dict[str, Any] = target
    return resolved


def type_of(schema: dict[str, Any]) -> str:
    """A schema's type in words: `string`, `integer (int64) | null`, `array of Practice`, `Practice`."""
    name = ref_name(schema)
    if name:
        return name
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " | ".join(type_of(part) for part in schema[key])
    kinds = schema.get("type", "any")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = []
    for kind in kinds:
        if kind == "array":
            words.append(f"array of {type_of(schema.get('items', {}))}")
        elif kind != "null" and schema.get("format"):
            words.append(f"{kind} ({schema['format']})")
        else:
            words.append(kind)
    return " | ".join(words)


def _body_schema(spec: Spec, node: dict[str, Any] | None) -> tuple[str | None, bool]:
    if not node:
        return None, False
    node = resolve(spec, node)
    schema = node.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None, False
    if schema.get("type") == "array":
        return ref_name(schema.get("items", {})), True
    return ref_name(schema), False


def _scope(op: dict[str, Any]) -> str:
    schemes = {name for requirement in op.get("security", []) for name in requirement}
    scopes = {SCOPES[name] for name in schemes if name in SCOPES}
    if len(scopes) != 1:
        raise ValueError(f"{op.get('operationId')}: `security` must name exactly one of {sorted(SCOPES)}")
    return scopes.pop()


def operations(spec: Spec) -> dict[str, Operation]:
    """Every operation by operationId, in the spec's order."""
    found: dict[str, Operation] = {}
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            params = []
            for raw in [*shared, *op.get("parameters", [])]:
                p = resolve(spec, raw)
                params.append(Param(p["name"], p["in"], bool(p.get("required")), type_of(p.get("schema", {})), raw=p))
            request, _ = _body_schema(spec, op.get("requestBody"))
            response, many = _body_schema(spec, op.get("responses", {}).get("200"))
            found[op["operationId"]] = Operation(
                id=op["operationId"],
                method=method.upper(),
                path=path,
                tag=op["tags"][0],
                scope=_scope(op),
                idempotent=bool(op.get("x-idempotent")),
                params=tuple(params),
                request=request,
                response=response,
                response_is_list=many,
                raw=op,
            )
    return found


def schemas(spec: Spec) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = spec.get("components", {}).get("schemas", {})
    return found


def fields(spec: Spec, schema: str) -> dict[str, Field]:
    """The properties of one schema by wire name."""
    node = schemas(spec).get(schema, {})
    required = set(node.get("required", []))
    return {
        name: Field(schema, name, name in required, type_of(prop), raw=prop)
        for name, prop in node.get("properties", {}).items()
    }


def nested(spec: Spec, schema: str | None) -> list[str]:
    """`schema` and every schema it reaches through its properties, each once."""
    seen: list[str] = []

    def walk(name: str | None) -> None:
        if name is None or name in seen:
            return
        seen.append(name)
        for prop in schemas(spec).get(name, {}).get("properties", {}).values():
            walk(ref_name(prop) or ref_name(prop.get("items", {})))

    walk(schema)
    return seen


def schema_uses(spec: Spec) -> dict[str, dict[str, list[str]]]:
    """For each schema: the operations that send it (`request`) and that receive it (`response`), nested included."""
    uses: dict[str, dict[str, list[str]]] = {}
    for op in operations(spec).values():
        for direction, root in (("request", op.request), ("response", op.response)):
            for name in nested(spec, root):
                uses.setdefault(name, {"request": [], "response": []})[direction].append(op.id)
    return uses


def secret_fields(spec: Spec) -> dict[str, list[str]]:
    """Schema name -> wire names marked `x-secret`."""
    out: dict[str, list[str]] = {}
    for name in schemas(spec):
        marked = [f.name for f in fields(spec, name).values() if f.secret]
        if marked:
            out[name] = marked
    return out


def iter_fields(spec: Spec) -> Iterator[Field]:
    for name in schemas(spec):
        yield from fields(spec, name).values()
