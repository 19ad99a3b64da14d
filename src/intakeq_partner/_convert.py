"""Models to plain data, with cattrs: Python names for your own code and JSON, wire names for replay and requests.

The rules (the wire half of them is what request bodies are made with):

- Python names: every field under its attribute name, ``None`` included, so the shape never depends on the
  data; unknown wire fields are left out (they have no Python name).
- Wire names: the JSON names IntakeQ uses; ``None`` fields left out (never sent); unknown fields kept as
  received, so ``structure(cls, to_dict(obj, names="wire"))`` gives back an equal model.
- Timestamps become ISO 8601 strings in UTC with a ``Z`` (milliseconds, or microseconds when there are some),
  so both forms are ready for ``json.dumps``.
- ``credentials=False`` drops the fields kept out of ``repr()`` (keys, tokens, an intake's password), for logs.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._errors import InvalidRequestError

__all__ = ["Names", "to_dict", "wire_body"]

Names = Literal["python", "wire"]


def iso_utc(value: _dt.datetime) -> str:
    """The one way a timestamp leaves the library: ISO 8601, UTC, ``Z``, no precision lost."""
    utc = value.astimezone(_dt.UTC)
    text = utc.isoformat(timespec="milliseconds" if utc.microsecond % 1000 == 0 else "microseconds")
    return text.replace("+00:00", "Z")


def _is_extra(field: attrs.Attribute[Any]) -> bool:
    return bool(field.metadata.get("extra"))


def _make_converter(names: Names, credentials: bool) -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(_dt.datetime, iso_utc)

    def factory(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
        fields = attrs.fields(cls)
        wire = names == "wire" and all(_is_extra(f) or "wire" in f.metadata for f in fields)
        overrides: dict[str, Any] = {}
        for field in fields:
            if _is_extra(field) or (not credentials and not field.repr):
                overrides[field.name] = override(omit=True)
            elif wire:
                overrides[field.name] = override(rename=field.metadata["wire"], omit_if_default=field.default is None)
        base = make_dict_unstructure_fn(cls, converter, **overrides)
        extra = next((f.name for f in fields if _is_extra(f)), None) if wire else None
        if extra is None:
            return base
        # A credential read tolerantly (of an unexpected type) waits in the unknown fields under its wire name.
        hidden = frozenset() if credentials else {f.metadata["wire"] for f in fields if not f.repr and not _is_extra(f)}

        def with_unknown_fields(obj: Any) -> dict[str, Any]:
            out = base(obj)
            unknown: dict[str, Any] = getattr(obj, extra)
            if unknown:
                out.update({key: value for key, value in unknown.items() if key not in out and key not in hidden})
            return out

        return with_unknown_fields

    converter.register_unstructure_hook_factory(attrs.has, factory)
    return converter


_converters: dict[tuple[Names, bool], cattrs.Converter] = {}


def _converter(names: Names, credentials: bool) -> cattrs.Converter:
    converter = _converters.get((names, credentials))
    if converter is None:
        converter = _converters[(names, credentials)] = _make_converter(names, credentials)
    return converter


def to_dict(model: Any, *, names: Names = "python", credentials: bool = True) -> dict[str, Any]:
    """Plain, JSON-ready data from any model this library returns (``Practice``, ``Intake``, ``FormToken``, ...).

    ``names="python"`` (the default) suits web handlers: attribute names, every field. ``names="wire"`` gives
    IntakeQ's own JSON, unknown fields included, for replaying into a fake or a test. The default keeps
    credentials (keys, single-sign-on and form tokens, an intake's password): for logs pass
    ``credentials=False``, which leaves them out. Bad arguments raise InvalidRequestError.
    """
    if names not in ("python", "wire"):
        raise InvalidRequestError(f"names must be 'python' or 'wire', got {names!r}")
    if not isinstance(credentials, bool):
        raise InvalidRequestError(f"credentials must be True or False, got {type(credentials).__name__}")
    if not attrs.has(type(model)):
        raise InvalidRequestError(f"to_dict takes a model of this library, not {type(model).__name__}")
    out: dict[str, Any] = _converter(names, credentials).unstructure(model)
    return out


def wire_body(model: Any) -> dict[str, Any]:
    """A request body: the wire-name form, every field (credentials are what some requests carry)."""
    return to_dict(model, names="wire")
