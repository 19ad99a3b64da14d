"""Retry policy as small pure functions: what to retry, and how long to wait first."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ._constants import DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY, MAX_RETRY_AFTER

RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
# A 500 may mean the server acted and then failed: resent only when repeating the request is harmless.
IDEMPOTENT_ONLY = frozenset({500})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# Failures that happen before any request byte leaves: safe to resend even a POST. A ProxyError is the proxy
# refusing the CONNECT (a 407, a 502): the request itself never left for the server.
NOTHING_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
)
# Failures worth another try at all; others (bad scheme, our own protocol misuse) will fail the same way again.
TRANSIENT: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


def is_idempotent(method: str, idempotent: bool | None = None) -> bool:
    """The caller's word if given, else what the HTTP method promises."""
    return idempotent if idempotent is not None else method.upper() in IDEMPOTENT_METHODS


def should_retry(outcome: httpx.Response | httpx.TransportError, *, idempotent: bool) -> bool:
    """Whether one failed attempt may be sent again.

    IntakeQ has no idempotency keys, so a non-idempotent request is resent only when the server surely
    did not act on it: the connection never opened, or it answered 429 (an explicit refusal).
    """
    if isinstance(outcome, httpx.Response):
        if outcome.status_code == 429:
            return True
        return idempotent and (outcome.status_code in RETRY_STATUSES or outcome.status_code in IDEMPOTENT_ONLY)
    if isinstance(outcome, httpx.ProxyError) and _refused_for_good(outcome):
        return False
    if isinstance(outcome, NOTHING_SENT):
        return True
    return idempotent and isinstance(outcome, TRANSIENT)


def _refused_for_good(error: httpx.ProxyError) -> bool:
    """A proxy that refused the CONNECT with a 4xx (407: wrong or missing credentials; 403: not allowed there)
    will refuse a resend the same way; a 5xx (its upstream down) may pass. Both stacks say it "407 Proxy ..."."""
    status = str(error).split(" ", 1)[0]
    return status.isdigit() and 400 <= int(status) < 500


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    initial_delay: float = DEFAULT_INITIAL_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    random: Callable[[], float],
) -> float | None:
    """Seconds to sleep before retry number `attempt + 1`, or None if the server asked for too long a wait.

    The server's Retry-After wins when present; otherwise exponential backoff with full jitter
    (uniform in [0, min(max_delay, initial_delay * 2**attempt)]) so that many clients do not retry in step.
    """
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER else None
    cap = min(max_delay, initial_delay * 2.0 ** min(attempt, 32))
    return cap * random()
