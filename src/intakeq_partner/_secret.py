"""A wrapper that keeps API keys out of reprs, logs, tracebacks and pickles."""

from __future__ import annotations

import hmac
import weakref
from typing import Any, NoReturn, final

from ._errors import InvalidRequestError
from ._redact import register

_MASK = "Secret('****')"


@final
class Secret:
    """An API key (partner or practice). Only `reveal()` gives the value back, so leaking it takes intent."""

    __slots__ = ("__weakref__", "_budget_id", "_value", "weak")
    _value: str
    _budget_id: str | None  # the hash naming its budgets (`_budgets.budget_id`), made once: asked at every request
    weak: weakref.ref[Secret]
    """A weak reference to this key, made once (a call record holds it: hooks that build none cost less)."""

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidRequestError("an API key must be a non-empty string")
        if not all("!" <= c <= "~" for c in value):
            # It goes in a header: a newline or non-ASCII character would fail there with the key in the message.
            raise InvalidRequestError("an API key must be printable ASCII without spaces (a trailing newline?)")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_budget_id", None)
        object.__setattr__(self, "weak", weakref.ref(self))
        register(self)  # so that it is masked in any error text, wherever it turns up

    def reveal(self) -> str:
        """The key itself: call this only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        # Pickles end up in caches, queues and crash dumps; refuse rather than leak.
        raise TypeError("Secret cannot be pickled; store the key in a secret manager instead")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
