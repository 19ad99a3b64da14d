"""Every default the client uses, on one screen, so a reader can check them in one place."""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it from here. Not importlib.metadata, which
# costs about 60 ms of import time for this string alone. Between releases it is the next one's `.dev0`
# (CONTRIBUTING.md: "Making a release"; tests/test_packaging.py holds it to CHANGELOG.md's headings).
VERSION = "0.2.0.dev0"

# Retries: exponential backoff with full jitter, capped; a longer Retry-After is an answer, not a wait.
DEFAULT_MAX_RETRIES = 2
DEFAULT_INITIAL_DELAY = 0.5  # seconds
DEFAULT_MAX_DELAY = 8.0  # seconds
MAX_RETRY_AFTER = 120.0  # seconds

# Timeouts are always explicit: httpx treats `timeout=None` as "wait forever".
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_WRITE_TIMEOUT = 30.0
DEFAULT_POOL_TIMEOUT = 30.0
# Those are per phase: a server sending a byte every few seconds never trips them. So each attempt also has a
# total deadline (connect, send, and the whole answer read), and a call may have one over all its attempts.
DEFAULT_ATTEMPT_TIMEOUT = 60.0  # seconds
DEFAULT_CALL_TIMEOUT: float | None = None  # seconds, retries and their waits included; None: no bound but the above

DEFAULT_MAX_CONCURRENCY = 64

# Budgets: after a 429 without Retry-After a key pauses this long (what community clients of IntakeQ's API do);
# a call waits at most MAX_RETRY_AFTER for its budget, then fails with RateLimitError.
DEFAULT_PAUSE_AFTER_429 = 60.0  # seconds
# A key pauses at most this long after a 429 (or `pause_after_429`, if longer), whatever Retry-After says: a
# wrong header must not stop a key for good, in this process or, through Redis, in every one. The caller still
# sees the server's value in RateLimitError.retry_after; past the pause one request asks the server again.
MAX_PAUSE_AFTER_429 = 3600.0  # seconds
# A Retry-After beyond this (or not finite) is unreadable, as if absent: no server means it.
MAX_READABLE_RETRY_AFTER = 366 * 86400.0  # seconds
# The shared limiter: Redis calls give up fast, and a slot held by a process that died frees after the lease.
REDIS_SOCKET_TIMEOUT = 1.0  # seconds
REDIS_CONNECT_TIMEOUT = 0.5  # seconds
REDIS_RETRY_INTERVAL = 5.0  # seconds: the longest interval between probes of a Redis in trouble
REDIS_FIRST_PROBE = 0.25  # seconds after a failure, the first probe (then 1.5 times longer each time)
# A request to Redis (an acquire, release or pause) that takes longer is a failure: Redis is in trouble, and the
# callers fall back. An acquire gives up sooner when the call has less time left (half of it), but not sooner
# than REDIS_MIN_OP_TIMEOUT: a healthy Redis answers in a millisecond, a busy event loop can take longer.
REDIS_OP_TIMEOUT = 0.5  # seconds
REDIS_MIN_OP_TIMEOUT = 0.25  # seconds
REDIS_LEASE = 120.0  # seconds

AUTH_HEADER = "X-Auth-Key"
USER_AGENT = f"intakeq-partner/{VERSION}"
REQUEST_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Correlation-Id")

# Error bodies can be large HTML pages; keep enough to debug, not enough to flood logs.
ERROR_BODY_LIMIT = 2048  # bytes

# The largest answer read, counted after decompression; the biggest real answer (a few thousand practices)
# is a few MB. Beyond it the call fails rather than exhaust memory (a gzip bomb inflates ~1000x).
DEFAULT_MAX_RESPONSE_SIZE = 64 * 1024 * 1024  # bytes
# An error answer is only read this far: enough for its message and excerpt; the rest is dropped unread.
ERROR_READ_LIMIT = 64 * 1024  # bytes
# We decompress ourselves, in steps of this many output bytes, so memory tracks the cap, not the body.
DECODE_STEP = 64 * 1024  # bytes
ACCEPT_ENCODING = "gzip, deflate"  # the encodings we decode; anything else is a protocol error

LOGGER_NAME = "intakeq_partner"

# Where clients point and where they read keys from when none is passed.
DEFAULT_BASE_URL = "https://intakeq.com"
BASE_URL_ENV = "INTAKEQ_BASE_URL"
PARTNER_KEY_ENV = "INTAKEQ_PARTNER_KEY"
PRACTICE_KEY_ENV = "INTAKEQ_PRACTICE_KEY"
REDIS_URL_ENV = "INTAKEQ_REDIS_URL"  # read by the command line only; in Python, pass RateLimits(redis_url=...)
LOG_ENV = "INTAKEQ_LOG"  # debug, info or warning: the intakeq_partner logger's level, to stderr (_logs.py)
HTTP_STACK_ENV = "INTAKEQ_HTTP_STACK"  # what http_stack="auto" means: auto, aiohttp or httpx
# What strict_responses=None means: "1" (or true/yes) reads answers strictly; the pytest plugin sets it.
STRICT_RESPONSES_ENV = "INTAKEQ_STRICT_RESPONSES"
