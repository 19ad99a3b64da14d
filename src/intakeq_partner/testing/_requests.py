"""What the fake accepts: every request checked against its operation's generated module, i.e. against the spec.

A body must be a JSON object whose fields the operation's request model knows, with the required ones present
and every value of the right type; query parameters must be ones the operation takes. Anything else is a 400
that names the field, so a client still sending a renamed or removed field fails loudly instead of passing.
Handlers then read the decoded model (`body.first_name`), never wire names written out by hand.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import attrs

from .._wire import _field_kind
from ._state import ApiError

_EXPECTED = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}


def wire_names(model: type[Any]) -> dict[str, str]:
    """Wire name -> attribute name of a generated model."""
    return {f.metadata["wire"]: f.name for f in attrs.fields(model) if "wire" in f.metadata}


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise ApiError(400, "A JSON body is required.")
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return parsed


def _check_value(wire: str, kind: tuple[str, Any], value: Any) -> None:
    what, detail = kind
    if what == "scalar":
        ok = value.__class__ is detail or (detail is float and value.__class__ is int)
        if not ok:
            raise ApiError(400, f"{wire} must be {_EXPECTED[detail]}.")
    elif what == "strings":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ApiError(400, f"{wire} must be a list of strings.")


def read_body(operation: ModuleType, raw: bytes) -> Any:
    """The request body as the operation's model, or a 400 naming the first field that does not fit."""
    return from_wire(operation.BODY_MODEL, parse_json_object(raw), operation.OPERATION_ID)


def from_wire(model: type[Any], data: dict[str, Any], operation_id: str) -> Any:
    """A generated request model from a JSON object, checked field by field (wire names in every message)."""
    known = wire_names(model)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ApiError(400, f"Unknown field '{unknown[0]}': {operation_id} does not take it.")
    hints = typing.get_type_hints(model)
    values: dict[str, Any] = {}
    for field in attrs.fields(model):
        wire = field.metadata.get("wire")
        if wire is None:
            continue
        value = data.get(wire)
        required = field.default is attrs.NOTHING
        if value is None or (required and isinstance(value, str) and not value.strip()):
            if required:
                raise ApiError(400, f"{wire} is required.")
            continue
        _check_value(wire, _field_kind(hints[field.name]), value)
        values[field.name] = value
    return model(**values)


def check_query(operation: ModuleType, query: Mapping[str, str]) -> None:
    """Only the operation's own query parameters, each of its type (booleans as true/false)."""
    types: dict[str, type] = operation.QUERY
    for name in query:
        if name not in types:
            raise ApiError(400, f"Unknown query parameter '{name}': {operation.OPERATION_ID} does not take it.")
        value = query[name]
        if not value:
            continue  # `?page=` reads as absent
        if types[name] is bool and value.lower() not in ("true", "false"):
            raise ApiError(400, f"{name} must be true or false.")
        if types[name] is int:
            try:
                int(value)
            except ValueError:
                raise ApiError(400, f"{name} must be an integer.") from None
