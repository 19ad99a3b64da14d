"""The log lines, as a listener on `events`: stdlib logging on the "intakeq_partner" logger, fields in `extra=`.

DEBUG: one line per attempt (and its retry), per wait, per key fetch. INFO: one line per finished call.
$INTAKEQ_LOG=debug|info|warning sets the logger's level and, if it has no handler, logs to stderr: no code needed.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from ._constants import LOG_ENV, LOGGER_NAME
from .events import CallFinished, Event, Hook, KeyFetched, ResponseReceived, Waiting, hook_for

__all__ = ["LOG_ENV", "configure_from_env", "log_listener"]

logger = logging.getLogger(LOGGER_NAME)


# logging's own answers to isEnabledFor, by level, emptied whenever any level changes: read directly, as asking
# isEnabledFor at every call cost a third of what a call spends when nothing listens.
_levels: dict[int, bool] = getattr(logger, "_cache", {})  # {} (never filled): isEnabledFor each time


def log_listener() -> Hook | None:
    """The listener, when the logger would write anything it says (else None: no event is built for it); at
    INFO it hears only CallFinished, so no other event is built for it."""
    info = _levels.get(logging.INFO)
    if info is None:
        info = logger.isEnabledFor(logging.INFO)
    if not info or logger.disabled:
        return None
    debug = _levels.get(logging.DEBUG)
    if debug is None:
        debug = logger.isEnabledFor(logging.DEBUG)
    return _debug if debug else _info


def _log(event: Event) -> None:
    if isinstance(event, ResponseReceived):
        if not logger.isEnabledFor(logging.DEBUG):
            return
        e = event.exchange
        label = e.status if e.error is None else (e.error if e.status is None else f"{e.status} with an {e.error}")
        suffix = "" if e.retry_in is None else f", retry in {e.retry_in:.2f} s"
        logger.debug(
            "%s %s -> %s in %.0f ms (attempt %d)%s",
            *(e.method, e.path, label, e.elapsed * 1000, e.attempt, suffix),
            extra={
                "event": "response",
                "method": e.method,
                "path": e.path,
                "status": e.status,
                "error": e.error,
                "attempt": e.attempt,
                "elapsed": e.elapsed,
                "request_id": e.request_id,
                "retry_in": e.retry_in,
            },
        )
    elif isinstance(event, CallFinished):
        call = event.call
        outcome = event.status if event.error is None else f"{event.error} ({event.status or 'no answer'})"
        logger.info(
            "%s %s: %s in %.0f ms, %d attempt(s)%s",
            *(call.method, call.path, outcome, event.elapsed * 1000, event.attempts),
            f", waited {call.waited:.2f} s" if call.waited else "",
            extra={
                "event": "call",
                "method": call.method,
                "path": call.path,
                "status": event.status,
                "error": event.error,
                "attempts": event.attempts,
                "elapsed": event.elapsed,
                "waited": call.waited,
                "request_id": call.request_id,
            },
        )
    elif isinstance(event, Waiting):
        logger.debug(
            "%s %s waits %.2f s (%s)",
            *(event.call.method, event.call.path, event.seconds, event.reason),
            extra={"event": "wait", "method": event.call.method, "path": event.call.path, "reason": event.reason},
        )
    elif isinstance(event, KeyFetched):
        logger.debug(
            "practice key for %r %s in %.0f ms",
            *(event.practice, "refreshed" if event.refreshed else "fetched", event.elapsed * 1000),
            extra={"event": "key", "practice": event.practice, "refreshed": event.refreshed},
        )


def configure_from_env() -> None:
    """Apply $INTAKEQ_LOG (debug, info or warning), if set."""
    value = os.environ.get(LOG_ENV, "").strip().lower()
    if not value:
        return
    level = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}.get(value)
    if level is None:
        warnings.warn(f"${LOG_ENV} must be debug, info or warning, not {value!r}: ignored", stacklevel=2)
        return
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


_info = hook_for(CallFinished)(_log)
_debug = hook_for(CallFinished, ResponseReceived, Waiting, KeyFetched)(_log)
