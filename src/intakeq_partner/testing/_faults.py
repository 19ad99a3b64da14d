"""Seeded fault plans, the server-side rate limit, and the counters tests read."""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["429", "500", "502", "503", "drop", "hang", "malformed"]
When = Literal["before", "after"]


@dataclass
class Faults:
    """What goes wrong, and how often, on ``/api/...`` requests.

    Probabilities are per request and are tried in the order of the fields; their sum should stay <= 1.
    The same seed and the same request order give the same faults, whatever the probabilities: every
    request draws the same number of random values.
    """

    latency: float = 0.0
    """Seconds added to every API request."""
    jitter: float = 0.0
    """Extra uniform delay in ``[0, jitter)`` seconds."""
    p429: float = 0.0
    p5xx: float = 0.0
    """Split evenly over ``statuses_5xx``."""
    p_drop: float = 0.0
    """The connection is closed without an HTTP answer."""
    p_hang: float = 0.0
    """No answer for ``hang_seconds`` (the client should time out first)."""
    p_malformed: float = 0.0
    """A 200 whose body is truncated JSON or an HTML page."""
    statuses_5xx: tuple[int, ...] = (500, 502, 503)
    retry_after: int = 1
    """Seconds in the ``Retry-After`` header of 429s."""
    p_retry_after_missing: float = 0.0
    """Share of injected 429s without ``Retry-After``."""
    p_retry_after_date: float = 0.0
    """Share of injected 429s whose ``Retry-After`` is an HTTP date."""
    rate_limit: float | None = None
    """Requests per ``rate_window`` per key (a sliding window); beyond it: 429 with ``Retry-After``."""
    hang_seconds: float = 30.0
    """Upper bound of a hang; the fake's shutdown ends hangs early."""
    rate_window: float = 1.0
    """Seconds the ``rate_limit`` window spans: ``rate_limit=10, rate_window=60`` plays "10 a minute"."""
    rate_limit_retry_after: bool = True
    """Whether the ``rate_limit``'s 429s say when a request would fit again; without it the client must guess."""


@dataclass(frozen=True)
class Plan:
    """What the fault layer does to one request."""

    delay: float
    kind: FaultKind | None
    when: When
    choice: float
    """A third random value, used to pick details (malformed style, Retry-After style)."""


def draw_plan(rng: random.Random, faults: Faults) -> Plan:
    """Draw exactly four values from ``rng``, then decide."""
    u_delay, u_kind, u_when, u_choice = rng.random(), rng.random(), rng.random(), rng.random()
    delay = faults.latency + u_delay * faults.jitter
    kind: FaultKind | None = None
    edge = 0.0
    for probability, name in (
        (faults.p429, "429"),
        (faults.p5xx, "5xx"),
        (faults.p_drop, "drop"),
        (faults.p_hang, "hang"),
        (faults.p_malformed, "malformed"),
    ):
        if probability > 0 and u_kind < edge + probability:
            if name == "5xx":
                statuses = faults.statuses_5xx or (500,)
                # Reuse the position inside the band to pick the status, so no extra draw is needed.
                index = min(int((u_kind - edge) / probability * len(statuses)), len(statuses) - 1)
                kind = _status_kind(statuses[index])
            else:
                kind = name  # type: ignore[assignment]
            break
        edge += probability
    # 429 and 503 are refusals: they never touch state. Everything else may fail before or after.
    when: When = "before" if kind in ("429", "503") or u_when < 0.5 else "after"
    return Plan(delay, kind, when, u_choice)


def _status_kind(status: int) -> FaultKind:
    if status == 502:
        return "502"
    if status == 503:
        return "503"
    return "500"


class RateLimiter:
    """A sliding window per key class (one second unless told otherwise); refused requests do not count."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}

    def check(self, key: str, limit: float, period: float = 1.0) -> int | None:
        """Return None when allowed (and record it), else the seconds to wait."""
        now = self.clock()
        window = self._seen.setdefault(key, deque())
        while window and window[0] <= now - period:
            window.popleft()
        if len(window) >= max(1, math.floor(limit)):
            return max(1, math.ceil(window[0] + period - now))
        window.append(now)
        return None

    def reset(self) -> None:
        self._seen.clear()


@dataclass(frozen=True)
class RequestRecord:
    """One request as the fake saw it; never holds key values."""

    method: str
    raw_path: str
    route: str | None
    status: int | None
    """None when no HTTP answer was sent (dropped connection, hang cut short)."""
    auth: str
    """``partner``, ``practice:<Id>``, ``invalid`` or ``none``."""
    fault: str | None = None
    fault_when: When | None = None


@dataclass
class Stats:
    """Counters for tests and benchmarks.

    The counters count every request. The log keeps every record unless ``log_limit`` is set; then only the
    newest ``log_limit`` (a long-running fake would otherwise grow without bound), and ``logged`` still
    counts them all.
    """

    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    log: list[RequestRecord] = field(default_factory=list)
    log_limit: int | None = None
    logged: int = 0
    """Records ever passed to ``record`` since the last reset, including those the limit dropped."""

    def __post_init__(self) -> None:
        if self.log_limit is not None and self.log_limit < 0:
            raise ValueError(f"log_limit must be None or >= 0, got {self.log_limit!r}")

    def record(self, entry: RequestRecord) -> None:
        """Append to the log, dropping the oldest record once the log holds ``log_limit``."""
        self.logged += 1
        limit = self.log_limit
        if limit is None:
            self.log.append(entry)
        elif limit > 0:
            self.log.append(entry)
            if len(self.log) > limit:
                del self.log[0]  # a memmove of `limit` pointers: cheap next to serving the request

    def reset(self) -> None:
        self.statuses.clear()
        self.faults.clear()
        self.calls.clear()
        self.log.clear()
        self.logged = 0
