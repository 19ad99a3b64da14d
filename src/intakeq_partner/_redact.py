"""Masking secrets in text that ends up in errors: body excerpts, server messages, request IDs.

Two nets. Every API key this process holds (each `Secret` registers itself here, weakly, so a key that is
no longer held is no longer searched for) is masked wherever it appears. And any value written under a
credential-like name (`ApiKey`, `Token`, `Password`, ...) is masked whatever it is, which covers keys we do
not know yet, such as a practice key echoed in the error answer of the very request that fetches it.
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import Protocol

__all__ = ["MASK", "redact", "register"]

MASK = "****"


class _HasValue(Protocol):
    def reveal(self) -> str: ...


# By identity, not by value: a WeakSet would keep one of two equal keys (a practice key fetched again), and
# forget the value when that one is dropped while the other is still held.
_live: weakref.WeakValueDictionary[int, _HasValue] = weakref.WeakValueDictionary()
_lock = threading.Lock()  # clients may live in several threads (one event loop each)

# Below this many known keys, one `in` test per key is fastest; above, a sliding window over the text.
_FEW = 16
# Keys held but not sent are masked from this length on: real keys are long, and masking a short test key
# such as "a1" would garble any text. The key a request was sent with is masked whatever its length.
_MIN_HELD = 8

_NAME = r"[\w.-]*(?:api[_-]?key|auth[_-]?key|token|password|passwd|secret)[\w.-]*"
# `"ApiKey": "v"`, `'token'='v'`, `password=v` (JSON, form and header styles): mask the value.
_FIELD = re.compile(
    rf"""(?ix)
    (["']?{_NAME}["']?\s*[:=]\s*)      # the name and its separator, kept
    ("(?:[^"\\]|\\.)*"?                # a double-quoted value (perhaps cut short)
    |'[^']*'?                          # a single-quoted value
    |(?!null\b|true\b|false\b)[^\s"',;&{{}}\[\]<]+)  # a bare value (not a JSON literal)
    """
)
# `<ApiKey>v</ApiKey>` (XML answers from .NET stacks).
_ELEMENT = re.compile(rf"(?i)(<({_NAME})>)[^<]*")


def register(secret: _HasValue) -> None:
    """Remember a key for as long as something else holds it."""
    with _lock:
        _live[id(secret)] = secret


def _known() -> set[str]:
    with _lock:
        values = [secret.reveal() for secret in _live.values()]
    return {value for value in values if len(value) >= _MIN_HELD}


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[:1] if value[:1] in "\"'" else ""
    return f"{match.group(1)}{quote}{MASK}{quote}"


def redact(text: str, *also: str | None) -> str:
    """`text` with every known key, every key in `also`, and every credential-named value masked."""
    if not text:
        return text
    keys = _known()
    keys.update(key for key in also if key)
    if len(keys) <= _FEW:
        found = [key for key in keys if key in text]
    else:
        # Many keys (a backend serving thousands of practices): look at each window of each key length once.
        found = []
        for length in {len(key) for key in keys}:
            for start in range(len(text) - length + 1):
                window = text[start : start + length]
                if window in keys:
                    found.append(window)
    # Longest first: a key that contains a shorter one must not be cut up by it and left half visible.
    for key in sorted(found, key=len, reverse=True):
        text = text.replace(key, MASK)
    text = _FIELD.sub(_mask_value, text)
    return _ELEMENT.sub(rf"\1{MASK}", text)
