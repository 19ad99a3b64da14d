"""The practice-key cache: one fetch per practice however many callers race, one refresh on a 401, and bounds.

A backend serving many practices for months would otherwise hold every key it ever fetched. The cache keeps at
most `size` keys (the least recently used one goes first) and, with `ttl`, none older than `ttl` seconds. A
key that leaves the cache is forgotten by masking too (nothing else holds it), and the next call for its
practice fetches it again: a key is never guessed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._errors import AuthenticationError, InvalidRequestError
from ._secret import Secret
from ._transport import call_ends, waits_bounded_by
from .events import refreshing_key, share_call

T = TypeVar("T")

DEFAULT_KEY_CACHE_SIZE = 10_000


class _Waiters:
    """The call deadlines (loop time; None: none) of the callers waiting on one shared fetch."""

    def __init__(self) -> None:
        self.deadlines: list[float | None] = []

    def latest(self) -> float | None:
        """Until when the fetch may wait for the partner key's budget: the most patient waiter's deadline.

        Waiting past every waiter's deadline would serve none of them, so then the fetch fails at once
        (RateLimitError, the wait in retry_after) for all. None: someone waits without a deadline, or nobody
        waits any more (the fetch goes on to fill the cache), so only `max_wait` bounds the wait.
        """
        if not self.deadlines or None in self.deadlines:
            return None
        return max(d for d in self.deadlines if d is not None)


def check_bounds(size: object, ttl: object) -> None:
    """Refuse a bound that cannot be meant, before anything is sent."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidRequestError(f"key_cache_size must be an int >= 1, got {size!r}")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf):
        raise InvalidRequestError(f"key_ttl must be None or a finite number of seconds > 0, got {ttl!r}")


class PracticeKeyCache:
    """Practice API keys by practice reference (ID or external ID), fetched on first use with the partner key."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[Secret]],
        *,
        size: int = DEFAULT_KEY_CACHE_SIZE,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_bounds(size, ttl)
        self._fetch = fetch
        self.size = size
        self.ttl = ttl
        self._clock = clock
        # Least recently used first; each key with when it was fetched (on `clock`) and by which fetch (a
        # serial number: a refusal of a key from fetch n is answered by a fetch numbered above n, once).
        self._keys: OrderedDict[str, tuple[Secret, float, int]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[tuple[Secret, int]]] = {}
        self._serial = 0
        self._waiters: dict[str, _Waiters] = {}
        self.evicted = 0  # keys dropped for room or age (for tests and monitoring)

    async def get(self, practice_ref: str) -> Secret:
        """The cached key, or the result of the single fetch that every concurrent caller shares."""
        return (await self._get(practice_ref))[0]

    def _cached(self, practice_ref: str) -> tuple[Secret, int] | None:
        entry = self._keys.get(practice_ref)
        if entry is None:
            return None
        key, fetched, serial = entry
        if self.ttl is not None and self._clock() - fetched >= self.ttl:
            del self._keys[practice_ref]  # too old: fetched again, by one fetch for all who ask now
            self.evicted += 1
            return None
        self._keys.move_to_end(practice_ref)
        return key, serial

    async def _get(self, practice_ref: str) -> tuple[Secret, int]:
        """The key and the serial number of the fetch that brought it."""
        cached = self._cached(practice_ref)
        if cached is not None:
            return cached
        task = self._inflight.get(practice_ref)
        # A done task still listed was cancelled before it ever ran (so `_load` could not unlist it): start afresh.
        if task is None or task.done():
            self._serial += 1
            waiters = self._waiters[practice_ref] = _Waiters()
            task = asyncio.ensure_future(self._load(practice_ref, waiters, self._serial))
            share_call(task)  # the fetch is part of the call that starts it, though it runs on its own
            task.add_done_callback(_consume_exception)
            self._inflight[practice_ref] = task
        waiters = self._waiters[practice_ref]
        # Each caller's deadline (its call_timeout) ends only its own wait; the fetch is bounded by none of them,
        # but waits for the partner key's budget no longer than the most patient one (`_Waiters.latest`).
        mine = call_ends()
        waiters.deadlines.append(mine)
        try:
            # Shield: one caller giving up must not cancel the fetch the others are waiting on.
            return await asyncio.shield(task)
        finally:
            waiters.deadlines.remove(mine)

    async def _load(self, practice_ref: str, waiters: _Waiters, serial: int) -> tuple[Secret, int]:
        try:
            with waits_bounded_by(waiters.latest):
                key = await self._fetch(practice_ref)
            self._store(practice_ref, key, serial)
            return key, serial
        finally:
            # Success or failure, the next caller after this point starts afresh (a failure is not cached).
            del self._inflight[practice_ref]
            if self._waiters.get(practice_ref) is waiters:
                del self._waiters[practice_ref]

    def _store(self, practice_ref: str, key: Secret, serial: int) -> None:
        self._keys[practice_ref] = (key, self._clock(), serial)
        self._keys.move_to_end(practice_ref)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)  # the least recently used; its next call fetches it again
            self.evicted += 1

    async def refresh(self, practice_ref: str, refused: int) -> Secret:
        """The key that follows one refused from fetch number `refused`: one new fetch for every caller it
        was refused to, however their refusals interleave with that fetch (a later one finds its key)."""
        entry = self._keys.get(practice_ref)
        if entry is not None and entry[2] <= refused:
            del self._keys[practice_ref]
        return (await self._get(practice_ref))[0]

    def invalidate(self, practice_ref: str, stale: Secret) -> None:
        """Forget the key, but only if it is still `stale`: many concurrent 401s cause one refresh, not many."""
        entry = self._keys.get(practice_ref)
        if entry is not None and entry[0] == stale:
            del self._keys[practice_ref]

    def drop(self, practice_ref: str) -> None:
        """Forget a practice's key outright (the practice was deleted)."""
        self._keys.pop(practice_ref, None)

    def __contains__(self, practice_ref: object) -> bool:
        return practice_ref in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"PracticeKeyCache({len(self._keys)} keys, size={self.size}, ttl={self.ttl})"


def _consume_exception(task: asyncio.Task[tuple[Secret, int]]) -> None:
    # If every waiter was cancelled, nobody reads the error; mark it retrieved to avoid a noisy warning.
    if not task.cancelled():
        task.exception()


async def call_with_key(cache: PracticeKeyCache, practice_ref: str, fn: Callable[[Secret], Awaitable[T]]) -> T:
    """Call `fn` with the practice's key; if it is refused (401), fetch it again and try exactly once more.

    Cached or just fetched alike (a key can be revoked between the fetch and its first use): the callers
    refused one key share one refresh (`PracticeKeyCache.refresh`). A refresh that hands back the refused key,
    or a second refusal, is raised (AuthenticationError).
    """
    key, serial = await cache._get(practice_ref)
    try:
        return await fn(key)
    except AuthenticationError:
        with refreshing_key():
            fresh = await cache.refresh(practice_ref, serial)
        if fresh == key:  # the server handed back the same key: trying it again cannot succeed
            raise
    return await fn(fresh)
