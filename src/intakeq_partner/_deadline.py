"""Attempt deadlines: each attempt's total time bound, enforced by one periodic sweep per pool."""

from __future__ import annotations

import asyncio
import math

import httpx

__all__ = ["AttemptDeadlineExceeded", "Deadline", "Watchdog"]


class AttemptDeadlineExceeded(httpx.TimeoutException):
    """One attempt ran past `attempt_timeout` (a timeout like any other to the retry rules: maybe sent)."""


class Deadline:
    """asyncio.timeout()'s job for one attempt, as a plain `with`, enforced by the pool's `Watchdog`.

    When the time is up the task is cancelled; `ours()`, asked about a CancelledError, says whether that
    cancellation was this deadline's alone (then it is withdrawn) rather than anyone else's.
    """

    __slots__ = ("_cancelling", "_task", "_watchdog", "expired", "when")

    def __init__(self, watchdog: Watchdog, seconds: float | None) -> None:
        self.expired = False
        self._watchdog: Watchdog | None = None
        if seconds is not None:
            task = asyncio.current_task()
            assert task is not None
            self._task = task
            self._cancelling = task.cancelling()
            self._watchdog = watchdog
            self.when = watchdog.watch(self, seconds)

    def expire(self) -> None:
        self.expired = True
        self._task.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._watchdog is not None:
            self._watchdog.forget(self)
        if self.expired and exc_type is not asyncio.CancelledError:
            self._task.uncancel()  # it finished as the time ran out: withdraw the cancellation

    def ours(self) -> bool:
        return self.expired and self._task.uncancel() <= self._cancelling


class Watchdog:
    """The attempt deadlines of one pool, enforced by one periodic sweep rather than a timer per attempt.

    A timer per request cost about 6 us of CPU a call, measured (the loop's timer heap fills with cancelled
    handles); a sweep every `step` seconds, only while attempts are in flight, costs next to nothing, and
    ends an attempt at most one step (a tenth of its timeout, at most 1 s) after its deadline.
    """

    def __init__(self) -> None:
        self._watched: dict[Deadline, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._step = math.inf

    def watch(self, deadline: Deadline, seconds: float) -> float:
        """Start watching; returns when the deadline falls (on the loop's clock)."""
        loop = asyncio.get_running_loop()
        self._watched[deadline] = None
        step = min(1.0, max(0.005, seconds / 10))
        if self._handle is None or step < self._step or loop is not self._loop:  # (a client reused in a new loop)
            if self._handle is not None:
                self._handle.cancel()
            self._step, self._loop = step, loop
            self._handle = loop.call_later(step, self._sweep)
        return loop.time() + seconds

    def forget(self, deadline: Deadline) -> None:
        self._watched.pop(deadline, None)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for deadline in [d for d in self._watched if d.when <= now]:
            del self._watched[deadline]
            deadline.expire()
        if self._watched:
            self._handle = loop.call_later(self._step, self._sweep)
        else:
            self._handle, self._step = None, math.inf
