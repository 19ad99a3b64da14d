"""The wire rules, in one place.

Generated models are plain attrs classes whose fields name their JSON key in metadata (``{"wire": "Id"}``).
This module holds every rule about turning JSON into those models (and, through ``_convert``'s cattrs
converter, back):

- PascalCase wire names (from field metadata), camelCase query values (``encode_query``);
- every timestamp becomes an aware UTC-based ``datetime``, whether it came as an ISO 8601 string (any number of
  fractional digits, ``Z`` or an offset) or as Unix milliseconds, an integer or a float (IntakeQ uses all of
  these, and the document does not say which field uses which);
- absent and ``null`` optional fields both become ``None``, and ``None`` is never sent;
- properties this version does not know are kept in ``additional_properties`` and sent back unchanged;
- open enums are plain strings, so a new value never breaks decoding;
- a body of the wrong shape raises ``WireError`` naming the model and field (never the value: health data);
  read tolerantly (clients' default), only a required field or the body's shape does, and an optional field
  that does not fit is left None, its value kept in ``additional_properties`` (``decode_response``).

Decoding is compiled once per class into a small straight-line function (no per-call closures, no copy of
the input), which is what makes it faster than the stock generated ``from_dict``.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import logging
import math as _math
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
import httpx

from ._constants import LOGGER_NAME, STRICT_RESPONSES_ENV
from ._convert import wire_body
from ._errors import InvalidRequestError, ResponseValidationError, body_excerpt, strip_bom

_loads: Callable[[bytes], Any]
try:  # orjson is optional (the `fast` extra); both parsers give the same Python objects for JSON.
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = _json.loads

T = TypeVar("T")
Decoder = Callable[[Any], Any]

__all__ = [
    "RequestSpec",
    "Sender",
    "WireError",
    "decode_list",
    "decode_one",
    "decode_response",
    "encode_query",
    "loads",
    "merge_update",
    "parse_json",
    "segment",
    "structure",
    "structure_list",
    "unstructure",
]


class WireError(ValueError):
    """A JSON body that does not match the spec: says which model and field, never the value."""


@attrs.frozen(slots=True)
class RequestSpec:
    """One request as the spec describes it; the sender adds the key and the policy."""

    method: str
    path: str
    key_scope: str  # "partner" or "practice": which key this endpoint accepts (its `security` in the spec)
    idempotent: bool | None  # True: safe to repeat even as a POST (`x-idempotent`); None: the method decides
    params: dict[str, str]
    json: Any
    # How the answer is read: False (tolerant, the default) keeps a field that does not fit its type as it came;
    # True fails the call (a client's `strict_responses`). Fields the next step needs are strict either way.
    strict: bool = False


class Sender(typing.Protocol):
    """What a generated operation sends through: the facade's policy (key, retries, limits, typed errors)."""

    async def send(self, request: RequestSpec, parse: Callable[[httpx.Response, RequestSpec], T]) -> T:
        """Send `request` and return `parse` of the success answer; raise an IntakeQError otherwise."""
        ...


def segment(value: str) -> str:
    """Escape one path segment so that no ID can reach another segment, the query or a parent path."""
    if not isinstance(value, str):
        raise InvalidRequestError(f"an ID must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidRequestError("an ID must not be empty")
    escaped = quote(value, safe="")
    # "." and ".." are left alone by quote() but would be resolved away as dot-segments.
    return escaped.replace(".", "%2E") if escaped in (".", "..") else escaped


def encode_query(value: str | bool | int) -> str:
    """Query values as IntakeQ expects them (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def strict_setting(value: object) -> bool:
    """A client's `strict_responses`: True or False as given; None (the default) means what
    $INTAKEQ_STRICT_RESPONSES says ("1", "true", "yes" or "on": strict), else tolerant. The pytest plugin
    sets that variable, so tests run strict unless they say otherwise."""
    if value is None:
        return os.environ.get(STRICT_RESPONSES_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if not isinstance(value, bool):
        raise InvalidRequestError(f"strict_responses must be True, False or None, not {type(value).__name__}")
    return value


def loads(content: bytes) -> Any:
    """Parse JSON with the fastest parser installed."""
    return _loads(content)


# -- decoding ---------------------------------------------------------------------------------------------------

_decoders: dict[type, Decoder] = {}
_tolerant_decoders: dict[type, Decoder] = {}


def structure(cls: type[T], data: Any, *, strict: bool = True) -> T:
    """Decode one JSON object into model `cls` (`strict=False`: the tolerant reading, see `decode_response`)."""
    decoder = (_decoders if strict else _tolerant_decoders).get(cls) or _compile_decoder(cls, strict)
    result: T = decoder(data)
    return result


def structure_list(cls: type[T], data: Any, *, strict: bool = True) -> list[T]:
    """Decode a JSON array of `cls` objects."""
    if data.__class__ is not list:
        raise WireError(f"expected an array of {cls.__name__}, got {_kind(data)}")
    decoder = (_decoders if strict else _tolerant_decoders).get(cls) or _compile_decoder(cls, strict)
    return [decoder(item) for item in data]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _fail(model: str, wire: str, expected: str, value: Any) -> typing.NoReturn:
    if value is None:
        raise WireError(f"{model}.{wire}: required field is missing")
    raise WireError(f"{model}.{wire}: expected {expected}, got {_kind(value)}")


# -- the tolerant reading --------------------------------------------------------------------------------------

logger = logging.getLogger(f"{LOGGER_NAME}.responses")
_warned: set[tuple[str, str]] = set()


def _odd(model: str, wire: str, value: Any, problem: WireError, odd: dict[str, Any] | None) -> dict[str, Any]:
    """Keep a value that does not fit its field, as received, for `additional_properties` (the typed field is
    left None); say so once per model and field in this process, naming them and never the value."""
    if (model, wire) not in _warned:
        _warned.add((model, wire))
        logger.warning(
            "%s.%s does not fit its declared type (%s): its value is kept as received in additional_properties[%r] "
            "and the field left None (strict_responses=True would fail the call; later surprises in this field "
            "are not logged)",
            model,
            wire,
            problem,
            wire,
        )
    odd = {} if odd is None else odd
    odd[wire] = value
    return odd


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _datetime(model: str, wire: str, value: Any) -> _dt.datetime:
    """A timestamp in any form IntakeQ was seen to use: an ISO 8601 string (any number of fractional digits,
    ``Z``, an offset or none, which means UTC), or Unix milliseconds as a JSON integer or float (IntakeQ's C#
    client reads them as doubles; recordings show ``1744432686643.0`` and ``1744432686643.7417``)."""
    kind = value.__class__
    if kind is str:
        try:  # Python 3.11+ reads Z, offsets and any number of fractional digits (it cuts them at six)
            parsed = _dt.datetime.fromisoformat(value)
        except ValueError:
            raise WireError(f"{model}.{wire}: not an ISO 8601 timestamp") from None
        if len(value) > 26 and _rounds_up(value):  # 7+ fractional digits: round, as float milliseconds are
            try:
                parsed += _MICROSECOND
            except OverflowError:  # .NET's DateTime.MaxValue, 9999-12-31T23:59:59.9999999: the last one there is
                pass
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)
    try:
        if kind is int:  # exact: no float rounding of the milliseconds
            return _EPOCH + _dt.timedelta(milliseconds=value)
        if kind is float and _math.isfinite(value):
            # Whole milliseconds exactly, the fraction rounded to the microsecond (a double near 1.7e12 holds
            # about a quarter of a microsecond, so that is all the fraction can carry).
            whole = _math.floor(value)
            return _EPOCH + _dt.timedelta(milliseconds=whole, microseconds=round((value - whole) * 1000))
    except OverflowError:
        raise WireError(f"{model}.{wire}: Unix milliseconds out of range") from None
    _fail(model, wire, "an ISO 8601 string or Unix milliseconds", value)


_MICROSECOND = _dt.timedelta(microseconds=1)


def _rounds_up(text: str) -> bool:
    """Whether an ISO timestamp's fraction has a seventh digit of 5 or more (.NET writes seven digits)."""
    dot = text.find(".", 19)
    return dot > 0 and len(text) > dot + 7 and text[dot + 1 : dot + 8].isdigit() and text[dot + 7] >= "5"


def _strings(model: str, wire: str, value: Any) -> list[str]:
    if value.__class__ is not list or any(item.__class__ is not str for item in value):
        _fail(model, wire, "an array of strings", value)
    result: list[str] = value
    return result


def _field_kind(hint: Any) -> tuple[str, Any]:
    """Reduce a field's type hint to (kind, detail); `X | None` is just X (None is handled by optionality)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _field_kind(args[0])
        return "any", None
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return ("strings", None) if item is str else ("models", item)
    if hint is _dt.datetime:
        return "datetime", None
    if attrs.has(hint):
        return "model", hint
    if hint in (str, int, bool, float):
        return "scalar", hint
    return "any", None


_EXPECTED = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}


def _nested_decoder(cls: type[Any], strict: bool) -> Decoder:
    """The decoder of a nested model, compiled now so the outer decoder calls it directly; a model that
    (indirectly) contains itself gets a late-bound call instead, since its decoder does not exist yet."""
    decoder = (_decoders if strict else _tolerant_decoders).get(cls)
    if decoder is not None:
        return decoder
    if (cls, strict) in _compiling:
        return lambda data: structure(cls, data, strict=strict)
    return _compile_decoder(cls, strict)


_compiling: set[tuple[type, bool]] = set()


def _compile_decoder(cls: type[Any], strict: bool = True) -> Decoder:
    """Write, compile and cache a straight-line decoder for `cls` (and for the models nested in it)."""
    _compiling.add((cls, strict))
    try:
        decoder = _build_decoder(cls, strict)
    finally:
        _compiling.discard((cls, strict))
    (_decoders if strict else _tolerant_decoders)[cls] = decoder
    return decoder


def _build_decoder(cls: type[Any], strict: bool) -> Decoder:
    """The decoder's source, straight-line. Strict: a field that does not fit raises WireError. Tolerant: so
    does a required field (the Id, key or token the next step needs), while an optional one that does not fit
    is left None and its value kept as received (`_odd`), which costs a well-formed answer one `odd` check."""
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {
        "cls": cls,
        "WireError": WireError,
        "_fail": _fail,
        "_kind": _kind,
        "_datetime": _datetime,
        "_strings": _strings,
        "_odd": _odd,
        "M": cls.__name__,
    }
    lines = [
        "def decode(d):",
        "    if d.__class__ is not dict:",
        "        raise WireError(f'expected a {M} object, got {_kind(d)}')",
        "    get = d.get",
    ]
    if not strict:
        lines.append("    odd = None")
    args: list[str] = []
    known: list[str] = []
    extra = False
    for i, field in enumerate(attrs.fields(cls)):
        if field.metadata.get("extra"):
            # Subset test first: it allocates nothing, and unknown fields are rare.
            env["KNOWN"] = frozenset(known)
            lines.append("    x = {} if d.keys() <= KNOWN else {k: d[k] for k in d.keys() - KNOWN}")
            if not strict:
                lines.append("    if odd is not None: x.update(odd)")
            args.append("x")
            extra = True
            continue
        wire = field.metadata["wire"]
        known.append(wire)
        var = f"v{i}"
        args.append(var)
        lines.append(f"    {var} = get({wire!r})")
        required = field.default is attrs.NOTHING
        field_lines = _field_lines(var, wire, _field_kind(hints[field.name]), required, env, i, strict)
        if strict or required:
            lines += field_lines
        else:
            lines += _tolerant(var, wire, field_lines)
    if not strict and not extra:  # a model with nowhere to keep a surprise reads strictly
        return _build_decoder(cls, True)
    lines.append(f"    return cls({', '.join(args)})")
    source = "\n".join(lines)
    mode = "strict" if strict else "tolerant"
    exec(compile(source, f"<intakeq_partner._wire {mode} decoder for {cls.__name__}>", "exec"), env)
    decoder: Decoder = env["decode"]
    return decoder


def _tolerant(var: str, wire: str, field_lines: list[str]) -> list[str]:
    """An optional field's checks inside a try: a WireError keeps the value aside (`odd`) and leaves it None.
    (A try block costs nothing in CPython 3.11+ until something raises.)"""
    if not field_lines:
        return []
    body = [f"    {line}" for line in field_lines]
    return [
        "    try:",
        *body,
        "    except WireError as e:",
        f"        odd = _odd(M, {wire!r}, {var}, e, odd)",
        f"        {var} = None",
    ]


def _field_lines(
    var: str, wire: str, kind: tuple[str, Any], required: bool, env: dict[str, Any], i: int, strict: bool = True
) -> list[str]:
    """The checks and conversions of one field; an optional field skips them when absent or null."""
    what, detail = kind
    if what == "scalar":
        check = f"{var}.__class__ is not {detail.__name__}"
        if detail is float:
            check = f"({check} and {var}.__class__ is not int)"
        cond = check if required else f"{var} is not None and {check}"
        return [f"    if {cond}: _fail(M, {wire!r}, {_EXPECTED[detail]!r}, {var})"]
    elif what == "datetime":
        statement = f"{var} = _datetime(M, {wire!r}, {var})"
    elif what == "strings":
        statement = f"_strings(M, {wire!r}, {var})"
    elif what == "model":
        env[f"D{i}"] = _nested_decoder(detail, strict)
        statement = f"{var} = D{i}({var})"
    elif what == "models":
        env[f"D{i}"] = _nested_decoder(detail, strict)
        fail = f"_fail(M, {wire!r}, 'an array', {var})"
        statement = f"{var} = [D{i}(o) for o in {var}] if {var}.__class__ is list else {fail}"
    elif required:  # "any": only presence is checked
        return [f"    if {var} is None: _fail(M, {wire!r}, 'a value', None)"]
    else:
        return []
    return [f"    {statement}" if required else f"    if {var} is not None: {statement}"]


# -- encoding ---------------------------------------------------------------------------------------------------


def unstructure(obj: Any) -> dict[str, Any]:
    """Encode a model as a JSON object: wire names, None fields left out, unknown fields sent back.

    The rules live in the cattrs converter of ``_convert``, which ``to_dict`` shares.
    """
    return wire_body(obj)


def merge_update(update_cls: type[T], current: Any, changes: Mapping[str, Any]) -> T:
    """A complete update body: the object as read, with the caller's changes (update-model attribute names).

    IntakeQ does not say whether a PUT keeps or clears a field its body leaves out, so an update must leave
    nothing out. What goes back: every field of the read object that the update model knows (by wire name),
    and every field neither model knows (a field added after this version), so a replacing server keeps it;
    fields only the read model knows (DateCreated, CompleteName, ...) describe the object and stay behind.
    Raises WireError when a field the update requires is in neither (say the server left it out of the read).
    """
    fields = [f for f in attrs.fields(typing.cast(Any, update_cls)) if not f.metadata.get("extra")]
    read_known = {f.metadata["wire"] for f in attrs.fields(type(current)) if not f.metadata.get("extra")}
    update_known = {f.metadata["wire"] for f in fields}
    read = unstructure(current)
    body = {k: v for k, v in read.items() if k in update_known or k not in read_known}
    by_name = {f.name: f.metadata["wire"] for f in fields}
    unknown = sorted(set(changes) - set(by_name))
    if unknown:  # the facade names a field the spec no longer has: a bug here, not the caller's
        raise TypeError(f"{update_cls.__name__} has no field {', '.join(unknown)}: the facade is out of date")
    for name, value in changes.items():
        if value is not None:  # the changes are plain JSON values: strings, booleans, lists of strings
            body[by_name[name]] = list(value) if isinstance(value, list) else value
    # Tolerant: a value the read kept as received (see decode_response) goes back as it came.
    return structure(update_cls, body, strict=False)


# -- responses --------------------------------------------------------------------------------------------------


def decode_response(
    response: httpx.Response, method: str, path: str, model: type[Any] | None, many: bool, strict: bool = True
) -> Any:
    """Decode a 2xx answer into `model` (or a list of it); a mismatch becomes ResponseValidationError.

    Tolerant (`strict=False`, what clients do unless made with `strict_responses=True`): an optional field
    whose value does not fit its type is left None and kept as received in the model's
    `additional_properties` under its wire name, with one warning per model and field per process; only
    required fields (an object's Id, a key, a token: what the next step needs) and the body's overall shape
    fail the call. Strict: any mismatch does.

    A leading UTF-8 byte-order mark (IIS and .NET stacks send one) is skipped. On failure the parsed body is
    dropped and the error raised outside the `except`, so that neither this frame's locals nor a chained
    exception's traceback keeps a value from the body (a practice key, say) for error trackers to record.
    """
    if model is None:
        return None  # the spec promises no body; whatever came is ignored
    data: Any = None
    try:
        data = loads(strip_bom(response.content))
        return structure_list(model, data, strict=strict) if many else structure(model, data, strict=strict)
    except (WireError, ValueError, RecursionError) as exc:  # JSON errors are ValueErrors in both parsers
        reason = str(exc) if isinstance(exc, WireError) else "the body is not valid JSON"
    data = None
    raise ResponseValidationError(
        status_code=response.status_code,
        method=method,
        path=path,
        # A body that should hold a credential (a key, token or password) may hold it still: keep none of it.
        body_excerpt="" if _holds_credentials(model) else body_excerpt(response),
        reason=reason,
    )


def parse_json(response: httpx.Response, method: str, path: str) -> Any:
    """Any JSON answer, for requests the spec does not describe: None for an empty body."""
    if not response.content.strip():
        return None
    try:
        return loads(strip_bom(response.content))
    except (ValueError, RecursionError):
        raise ResponseValidationError(
            status_code=response.status_code,
            method=method,
            path=path,
            body_excerpt=body_excerpt(response),
            reason="the body is not valid JSON",
        ) from None


def decode_one(response: httpx.Response, request: RequestSpec, model: type[T]) -> T:
    """A success answer holding one `model` object."""
    result: T = decode_response(response, request.method, request.path, model, False, request.strict)
    return result


def decode_list(response: httpx.Response, request: RequestSpec, model: type[T]) -> list[T]:
    """A success answer holding an array of `model` objects."""
    result: list[T] = decode_response(response, request.method, request.path, model, True, request.strict)
    return result


def _holds_credentials(model: type[Any]) -> bool:
    """Whether the model has a credential field (the generator keeps those out of repr)."""
    return any(not field.repr and not field.metadata.get("extra") for field in attrs.fields(model))
