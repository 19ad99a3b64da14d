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


def _spans(text: str, keys: set[str]) -> list[tuple[int, int]]:
    """Where each key occurs in `text`, every occurrence, as (start, end) pairs in no particular order."""
    spans: list[tuple[int, int]] = []
    if len(keys) <= _FEW:
        for key in keys:
            start = text.find(key)
            while start != -1:
                end = start + len(key)
                if spans and spans[-1][0] <= start <= spans[-1][1]:  # e.g. the key again, overlapping itself
                    spans[-1] = (spans[-1][0], max(spans[-1][1], end))  # one span, not one per character
                else:
                    spans.append((start, end))
                start = text.find(key, start + 1)
    else:
        # Many keys (a backend serving thousands of practices): look at each window of each key length once.
        for length in {len(key) for key in keys}:
            for start in range(len(text) - length + 1):
                if text[start : start + length] in keys:
                    spans.append((start, start + length))
    return spans


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each run of overlapping or touching spans replaced by one mask.

    All at once, on the text as it came: replacing key by key would let whichever key went first cut up
    another that overlaps it (a key held for another practice, say), leaving part of that one visible, and
    which part would depend on the order the keys happened to be tried in.
    """
    runs: list[list[int]] = []
    for start, end in sorted(spans):
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    pieces: list[str] = []
    done = 0
    for start, end in runs:
        pieces += [text[done:start], MASK]
        done = end
    return "".join(pieces) + text[done:]


def redact(text: str, *also: str | None) -> str:
    """`text` with every known key, every key in `also`, and every credential-named value masked."""
    if not text:
        return text
    keys = _known()
    keys.update(key for key in also if key)
    text = _mask_spans(text, _spans(text, keys))
    text = _FIELD.sub(_mask_value, text)
    return _ELEMENT.sub(rf"\1{MASK}", text)
