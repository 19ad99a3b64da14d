"""The candidate measured against `_wire.py`'s hand-written decoders: a cattrs converter that structures with
every wire rule (issue 12 asked whether cattrs could do both directions within the decoding targets).

Rules kept, so the comparison is fair: wire names; strict scalar types (cattrs' own `str` hook would turn 5
into "5"); timestamps as ISO 8601 strings or Unix milliseconds; absent and null optional fields both None;
unknown fields kept in `additional_properties`; open enums (plain strings); errors as `WireError` naming the
model and field, never the value. `tests/test_cattrs_candidate.py` checks it decodes exactly as `_wire` does.
"""

from __future__ import annotations

import datetime as _dt
import math
import typing
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from intakeq_partner._wire import WireError

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _strict(kind: type[Any]) -> Callable[[Any, type[Any]], Any]:
    def check(value: Any, _: type[Any]) -> Any:
        if value.__class__ is not kind and not (kind is float and value.__class__ is int):
            raise TypeError(f"expected {kind.__name__}")
        return value

    return check


def _either(*kinds: type[Any]) -> Callable[[Any, type[Any]], Any]:
    def check(value: Any, _: type[Any]) -> Any:
        if value.__class__ not in kinds:
            raise TypeError(f"expected one of {', '.join(k.__name__ for k in kinds)}")
        return value

    return check


def _datetime(value: Any, _: type[Any]) -> _dt.datetime:
    if value.__class__ is int:
        return _EPOCH + _dt.timedelta(milliseconds=value)
    if value.__class__ is float and math.isfinite(value):
        whole = math.floor(value)
        return _EPOCH + _dt.timedelta(milliseconds=whole, microseconds=round((value - whole) * 1000))
    if value.__class__ is not str:
        raise TypeError("expected an ISO 8601 string or Unix milliseconds")
    parsed = _dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)


def make_converter(*, detailed_validation: bool = True) -> cattrs.Converter:
    """A structuring converter with the wire rules. `detailed_validation` is what lets an error name the field."""
    converter = cattrs.Converter(detailed_validation=detailed_validation)
    for kind in (str, int, bool, float):
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook(_dt.datetime, _datetime)
    # Question.OfficeNote: two public clients disagree, so the spec takes both (and null, as optional fields do).
    converter.register_structure_hook(bool | str | None, _either(bool, str, type(None)))

    def factory(cls: type[Any]) -> Callable[[Any, type[Any]], Any]:
        fields = attrs.fields(cls)
        extra = next((f.name for f in fields if f.metadata.get("extra")), None)
        known = frozenset(f.metadata["wire"] for f in fields if not f.metadata.get("extra"))
        overrides = {
            f.name: override(omit=True) if f.metadata.get("extra") else override(rename=f.metadata["wire"])
            for f in fields
        }
        base = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]

        def structure(data: Any, _: type[Any]) -> Any:
            if data.__class__ is not dict:
                raise TypeError(f"expected a {cls.__name__} object")
            obj = base(data, cls)
            if extra is not None and not data.keys() <= known:
                setattr(obj, extra, {k: data[k] for k in data.keys() - known})
            return obj

        return structure

    converter.register_structure_hook_factory(attrs.has, factory)
    return converter


class Structurer:
    """`structure_list(cls, data)` as `_wire` has it, on the cattrs converter; failures become WireError."""

    def __init__(self, *, detailed_validation: bool = True) -> None:
        self.converter = make_converter(detailed_validation=detailed_validation)

    def structure_list(self, cls: type[Any], data: Any) -> list[Any]:
        if data.__class__ is not list:
            raise WireError(f"expected an array of {cls.__name__}")
        try:
            return self.converter.structure(data, list[cls])  # type: ignore[valid-type]
        except Exception as exc:
            raise WireError(f"{cls.__name__}: {_where(exc)}") from None


def _where(exc: BaseException) -> str:
    """Field paths from cattrs' validation errors, without the values (which may be health data)."""
    if isinstance(exc, cattrs.BaseValidationError):
        paths = []
        for message in cattrs.transform_error(exc):
            paths.append(message.rsplit(" @ ", 1)[-1])
        return "invalid " + ", ".join(paths)
    return type(exc).__name__


__all__ = ["Structurer", "make_converter", "typing"]
