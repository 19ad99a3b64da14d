"""Masking secrets in text that ends up in errors: body excerpts, server messages, request IDs.

Two nets. Every API key this process holds (each `Secret` registers itself here, weakly, so a key that is
no longer held is no longer searched for) is masked wherever it appears. And any value written under a
credential-like name (`ApiKey`, `Token`, `Password`, ...) is masked whatever it is, which covers keys we do
not know yet, such as a practice key echoed in the error answer of the very request that fetches it.

The cost of the first net does not grow with the keys held (a backend may hold 100,000): the held keys are a
set of values kept up to date as keys come and go, and a text is scanned once, in C, for runs of the
characters keys are made of; only those runs (a few words of an error answer) are looked up in the set, each
window of each key length once. A key can only occur inside such a run, so nothing is missed.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import deque
from typing import Protocol

__all__ = ["MASK", "held", "redact", "register"]

MASK = "****"


class _HasValue(Protocol):
    def reveal(self) -> str: ...


# Keys held but not sent are masked from this length on: real keys are long, and masking a short test key
# such as "a1" would garble any text. The key a request was sent with is masked whatever its length.
_MIN_HELD = 8

_lock = threading.Lock()  # clients may live in several threads (one event loop each)
# Held key values, each with how many live `Secret`s hold it: by count, not a WeakSet of the objects, so that
# of two equal keys (a practice key fetched again) dropping one leaves the value masked while the other lives.
_counts: dict[str, int] = {}
_lengths: dict[int, int] = {}  # each length among those values, with how many values have it
# The weak references that tell us a `Secret` is gone (kept here so that they live as long as it does).
_refs: set[weakref.ref[_HasValue]] = set()
# Values whose `Secret` died: its callback may run in any thread, in the middle of anything (a collection),
# so it only appends here (atomic), and the counts are brought up to date under the lock at the next use.
_gone: deque[str] = deque()
_chars: set[str] = set()  # every character of every key held so far (it only grows: a wider net misses nothing)
_runs: re.Pattern[str] | None = None  # runs of those characters, at least _MIN_HELD long

# A whole run of name characters holding a credential word. Matched from the run's start only, with the word
# found by a look-ahead and the run taken whole (possessive): `[\w.-]*word[\w.-]*` tried from every position
# and backtracked over every word in the run, which cost 0.2 s for a 3 KB run of letters and minutes for 100 KB.
_NAME = r"(?<![\w.-])(?=[\w.-]*?(?:api[_-]?key|auth[_-]?key|token|password|passwd|secret))[\w.-]++"
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
    value = secret.reveal()
    if len(value) < _MIN_HELD:
        return
    global _runs
    with _lock:
        _forget_gone()
        count = _counts.get(value, 0)
        _counts[value] = count + 1
        if not count:
            _lengths[len(value)] = _lengths.get(len(value), 0) + 1
        new = set(value) - _chars
        if new:
            _chars.update(new)
            _runs = re.compile(f"[{''.join(re.escape(c) for c in sorted(_chars))}]{{{_MIN_HELD},}}")
        _refs.add(weakref.ref(secret, _Died(value)))


class _Died:
    """The callback of one key's weak reference: count its value out at the next use."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self, ref: weakref.ref[_HasValue]) -> None:
        _gone.append(self.value)
        _refs.discard(ref)


def _forget_gone() -> None:
    """Count out the keys that died since (under the lock)."""
    while _gone:
        value = _gone.popleft()
        left = _counts[value] - 1
        if left:
            _counts[value] = left
        else:
            del _counts[value]
            left = _lengths[len(value)] - 1
            if left:
                _lengths[len(value)] = left
            else:
                del _lengths[len(value)]


def held() -> int:
    """How many distinct key values are held (and masked) now."""
    with _lock:
        _forget_gone()
        return len(_counts)


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(2)
    quote = value[:1] if value[:1] in "\"'" else ""
    return f"{match.group(1)}{quote}{MASK}{quote}"


def _held_spans(text: str) -> list[tuple[int, int]]:
    """Where each held key occurs in `text` (every occurrence, overlapping ones too), as (start, end) pairs."""
    with _lock:
        _forget_gone()
        runs = _runs
        lengths = sorted(_lengths)
        keys = _counts  # only looked up in below, outside the lock (a lookup is atomic)
    spans: list[tuple[int, int]] = []
    if runs is None or not lengths:
        return spans
    for run in runs.finditer(text):
        token = run.group()
        start = run.start()
        if token in keys:  # the run is a key (the usual case: a key echoed whole): every key in it is covered
            spans.append((start, start + len(token)))
            continue
        for length in lengths:
            if length > len(token):
                break
            for i in range(len(token) - length + 1):
                if token[i : i + length] in keys:
                    spans.append((start + i, start + i + length))
    return spans


def _spans(text: str, keys: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where each of a few keys occurs in `text`, every occurrence (a key overlapping itself: one span)."""
    spans: list[tuple[int, int]] = []
    for key in keys:
        start = text.find(key)
        while start != -1:
            end = start + len(key)
            if spans and spans[-1][0] <= start <= spans[-1][1]:  # e.g. the key again, overlapping itself
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))  # one span, not one per character
            else:
                spans.append((start, end))
            start = text.find(key, start + 1)
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
    spans = _held_spans(text)
    spans += _spans(text, tuple(key for key in also if key))
    text = _mask_spans(text, spans)
    text = _FIELD.sub(_mask_value, text)
    return _ELEMENT.sub(rf"\1{MASK}", text)
