"""The practice-key cache: one fetch per practice however many callers race, and one refresh on a 401."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._errors import AuthenticationError
from ._secret import Secret
from ._transport import call_ends, waits_bounded_by
from .events import refreshing_key

T = TypeVar("T")


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


class PracticeKeyCache:
    """Practice API keys by practice reference (ID or external ID), fetched on first use with the partner key."""

    def __init__(self, fetch: Callable[[str], Awaitable[Secret]]) -> None:
        self._fetch = fetch
        self._keys: dict[str, Secret] = {}
        self._inflight: dict[str, asyncio.Task[Secret]] = {}
        self._waiters: dict[str, _Waiters] = {}

    async def get(self, practice_ref: str) -> Secret:
        """The cached key, or the result of the single fetch that every concurrent caller shares."""
        key, _ = await self._get(practice_ref)
        return key

    async def _get(self, practice_ref: str) -> tuple[Secret, bool]:
        """The key and whether it came from the cache (False: fetched just now, so a refresh cannot help)."""
        key = self._keys.get(practice_ref)
        if key is not None:
            return key, True
        task = self._inflight.get(practice_ref)
        # A done task still listed was cancelled before it ever ran (so `_load` could not unlist it): start afresh.
        if task is None or task.done():
            waiters = self._waiters[practice_ref] = _Waiters()
            task = asyncio.ensure_future(self._load(practice_ref, waiters))
            task.add_done_callback(_consume_exception)
            self._inflight[practice_ref] = task
        waiters = self._waiters[practice_ref]
        # Each caller's deadline (its call_timeout) ends only its own wait; the fetch is bounded by none of them,
        # but waits for the partner key's budget no longer than the most patient one (`_Waiters.latest`).
        mine = call_ends()
        waiters.deadlines.append(mine)
        try:
            # Shield: one caller giving up must not cancel the fetch the others are waiting on.
            return await asyncio.shield(task), False
        finally:
            waiters.deadlines.remove(mine)

    async def _load(self, practice_ref: str, waiters: _Waiters) -> Secret:
        try:
            with waits_bounded_by(waiters.latest):
                key = await self._fetch(practice_ref)
            self._keys[practice_ref] = key
            return key
        finally:
            # Success or failure, the next caller after this point starts afresh (a failure is not cached).
            del self._inflight[practice_ref]
            if self._waiters.get(practice_ref) is waiters:
                del self._waiters[practice_ref]

    def invalidate(self, practice_ref: str, stale: Secret) -> None:
        """Forget the key, but only if it is still `stale`: many concurrent 401s cause one refresh, not many."""
        if self._keys.get(practice_ref) == stale:
            del self._keys[practice_ref]

    def drop(self, practice_ref: str) -> None:
        """Forget a practice's key outright (the practice was deleted)."""
        self._keys.pop(practice_ref, None)

    def __contains__(self, practice_ref: object) -> bool:
        return practice_ref in self._keys

    def __repr__(self) -> str:
        return f"PracticeKeyCache({len(self._keys)} keys)"


def _consume_exception(task: asyncio.Task[Secret]) -> None:
    # If every waiter was cancelled, nobody reads the error; mark it retrieved to avoid a noisy warning.
    if not task.cancelled():
        task.exception()


async def call_with_key(cache: PracticeKeyCache, practice_ref: str, fn: Callable[[Secret], Awaitable[T]]) -> T:
    """Call `fn` with the practice's key; if a cached key is refused (401), refetch it and try exactly once more."""
    key, cached = await cache._get(practice_ref)
    try:
        return await fn(key)
    except AuthenticationError:
        if not cached:
            raise
        cache.invalidate(practice_ref, key)
        with refreshing_key():
            fresh = await cache.get(practice_ref)
        if fresh == key:  # the server handed back the same key: trying it again cannot succeed
            raise
    return await fn(fresh)
