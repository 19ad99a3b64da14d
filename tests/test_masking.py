"""Masking held keys costs the same with 100,000 keys held as with none, and misses none of them."""

from __future__ import annotations

import gc
import random
import subprocess
import sys

import pytest

from intakeq_partner._redact import MASK, held, redact, register
from intakeq_partner._secret import Secret


class _Counted:
    """A held key that counts how often its value is read."""

    reads = 0

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        _Counted.reads += 1
        return self._value


def test_an_error_text_is_masked_without_reading_every_held_key_again() -> None:
    """The keys held are looked up, not walked: masking one text reads none of them (it read all of them)."""
    keys = [_Counted(f"counted-key-{i:05d}-abcdef") for i in range(2000)]
    for key in keys:
        register(key)
    _Counted.reads = 0
    text = f"not found: {keys[1234]._value} (request 42)"
    assert redact(text) == f"not found: {MASK} (request 42)"
    assert redact("no key in here at all, only words") == "no key in here at all, only words"
    assert _Counted.reads == 0
    del keys, key
    gc.collect()


def test_a_key_nobody_holds_any_more_is_no_longer_searched_for() -> None:
    before = held()
    keys = [Secret(f"dropped-key-{i:04d}-0123456789") for i in range(500)]
    assert held() == before + 500
    value = keys[7].reveal()
    del keys
    gc.collect()
    assert held() == before
    assert redact(f"x {value} y") == f"x {value} y"


def _reference(text: str, keys: list[str], also: str) -> str:
    """Masking by brute force: every character inside any occurrence of any key is covered; each run of
    covered characters becomes one mask."""
    covered = [False] * len(text)
    for key in [*keys, also]:
        for start in range(len(text) - len(key) + 1):
            if text.startswith(key, start):
                covered[start : start + len(key)] = [True] * len(key)
    out: list[str] = []
    for i, char in enumerate(text):
        if not covered[i]:
            out.append(char)
        elif i == 0 or not covered[i - 1]:
            out.append(MASK)
    return "".join(out)


def test_keys_overlapping_nesting_and_repeating_in_random_texts_are_all_masked() -> None:
    """Against brute force: keys of several lengths made of few letters, so that they overlap, nest and repeat."""
    rng = random.Random(18)
    for _ in range(60):
        alphabet = rng.choice(["ab", "abc", "ab-", "xy!{"])
        keys = sorted({"".join(rng.choices(alphabet, k=rng.randint(8, 12))) for _ in range(rng.randint(1, 30))})
        secrets = [Secret(key) for key in keys]
        also = "".join(rng.choices(alphabet, k=rng.randint(2, 5)))
        pieces = [rng.choice([*keys, also, " ", "zz", alphabet]) for _ in range(rng.randint(1, 12))]
        text = "".join(pieces)
        others = [value for value in _live_values() if value not in keys]
        assert redact(text, also) == _reference(text, keys + others, also), (text, keys, also)
        del secrets  # no cycles: freed (and forgotten by masking) at once, without a costly gc.collect()


def _live_values() -> list[str]:
    """Held keys other tests left alive (their masking is right too, so the reference must know them)."""
    from intakeq_partner import _redact

    return list(_redact._counts)


def test_masking_a_long_error_message_takes_linear_time() -> None:
    """A server's Message is masked whole before it is cut: 100 KB of letters, or of one credential word over
    and over, took minutes of blocked event loop (the credential-name pattern backtracked quadratically). Run
    in a child process: a regular expression cannot be interrupted from Python."""
    code = (
        "from intakeq_partner._redact import redact\n"
        "for text in ('a' * 100_000, 'token' * 20_000, '<' + 'apikey-' * 15_000):\n"
        "    assert redact(text) == text\n"
        "print(redact('x ApiKey=abc Token: \"t\" <secret>s</secret>'))\n"
    )
    try:  # about 0.1 s with the linear pattern (plus the interpreter's start); the quadratic one took minutes
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("masking 100 KB of text took over a minute")
    assert done.stdout.strip() == 'x ApiKey=**** Token: "****" <secret>****</secret>'
