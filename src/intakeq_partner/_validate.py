"""Argument checks that run before anything is sent, with errors that name the argument."""

from __future__ import annotations

from collections.abc import Iterable

from ._errors import InvalidRequestError


def text(name: str, value: object) -> str:
    """A required, non-blank string."""
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidRequestError(f"{name} must not be empty")
    return _encodable(name, value)


def _encodable(name: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: httpx would fail later with a bare UnicodeEncodeError
        raise InvalidRequestError(f"{name} is not valid text (it holds a lone surrogate)") from None
    return value


def optional_text(name: str, value: object) -> str | None:
    """None, or a non-blank string."""
    return None if value is None else text(name, value)


def optional_string(name: str, value: object) -> str | None:
    """None, or any string, blank included (free-text fields such as an address line)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a string, not {type(value).__name__}")
    return _encodable(name, value)


def flag(name: str, value: object) -> bool | None:
    """None, or a real bool (1 and "yes" are mistakes, not booleans)."""
    if value is not None and not isinstance(value, bool):
        raise InvalidRequestError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def id_list(name: str, values: Iterable[str] | None) -> list[str] | None:
    """None, or a list of non-blank strings (a bare string is refused: it would be read as characters)."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidRequestError(f"{name} must be a list of IDs, not {type(values).__name__}")
    return [text(f"{name}[{i}]", v) for i, v in enumerate(values)]


def exactly_one(**named: object) -> str:
    """The name of the one argument given; fail naming all of them when none or several are."""
    given = [name for name, value in named.items() if value is not None]
    if len(given) != 1:
        names = ", ".join(named)
        got = ", ".join(given) if given else "none"
        raise InvalidRequestError(f"give exactly one of {names} (got {got})")
    return given[0]


def at_least_one(**named: object) -> list[str]:
    """The names of the arguments given; fail naming all of them when none is."""
    given = [name for name, value in named.items() if value is not None]
    if not given:
        raise InvalidRequestError(f"give at least one of {', '.join(named)}")
    return given


def page_number(value: object) -> int:
    """A 1-based page number: an int (not a bool) of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError("page must be an int >= 1")
    return value
