"""The exception hierarchy, and the one function that maps an error response onto it."""

from __future__ import annotations

import codecs
import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import httpx

from ._constants import AUTH_HEADER, ERROR_BODY_LIMIT, MAX_READABLE_RETRY_AFTER, REQUEST_ID_HEADERS
from ._redact import redact


class IntakeQError(Exception):
    """Root of every error this library raises: `except IntakeQError` catches them all."""


class InvalidRequestError(IntakeQError, ValueError):
    """A bad argument, caught before anything was sent."""


def _where(method: str, path: str) -> str:
    return f"{method} {path.split('?', 1)[0]}"


class APIStatusError(IntakeQError):
    """The server answered with a non-2xx status."""

    def __init__(
        self,
        *,
        status_code: int,
        method: str,
        path: str,
        request_id: str | None = None,
        body_excerpt: str = "",
        message: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path.split("?", 1)[0]  # query values can carry user IDs
        self.request_id = request_id
        self.body_excerpt = body_excerpt
        self.message = message
        super().__init__(self._summary())

    def _summary(self) -> str:
        try:
            phrase = HTTPStatus(self.status_code).phrase
        except ValueError:
            phrase = "Error"
        text = f"{self.status_code} {phrase} on {_where(self.method, self.path)}"
        if self.message:
            text += f": {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class BadRequestError(APIStatusError):
    """400 or 422: the server rejected the arguments."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but not for this resource (e.g. a partner key on a practice endpoint)."""


class NotFoundError(APIStatusError):
    """404."""


class ConflictError(APIStatusError):
    """409: the request conflicts with what IntakeQ holds (an external ID in use, a practitioner who still owns
    client data).

    `existing`: after a create with an external ID, the object IntakeQ holds under that ID when it differs from
    what the create asked for (compare, then update it or choose another ID); None otherwise.
    """

    def __init__(
        self,
        *,
        status_code: int,
        method: str,
        path: str,
        request_id: str | None = None,
        body_excerpt: str = "",
        message: str | None = None,
        existing: Any = None,
    ) -> None:
        super().__init__(
            status_code=status_code,
            method=method,
            path=path,
            request_id=request_id,
            body_excerpt=body_excerpt,
            message=message,
        )
        self.existing = existing


class RateLimitError(APIStatusError):
    """429: slow down; `retry_after` is the server's wish in seconds, if it said one."""

    def __init__(
        self,
        *,
        status_code: int,
        method: str,
        path: str,
        request_id: str | None = None,
        body_excerpt: str = "",
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            status_code=status_code,
            method=method,
            path=path,
            request_id=request_id,
            body_excerpt=body_excerpt,
            message=message,
        )


class ServerError(APIStatusError):
    """5xx: the server failed; a write may or may not have been applied."""


class APIConnectionError(IntakeQError):
    """No usable response: the connection failed or broke.

    `maybe_sent` tells whether request bytes may have reached the server (so a write may have been applied).
    """

    def __init__(self, *, method: str, path: str, message: str = "", maybe_sent: bool = True) -> None:
        self.method = method
        self.path = path.split("?", 1)[0]
        self.maybe_sent = maybe_sent
        kind = "timed out" if isinstance(self, APITimeoutError) else "connection failed"
        super().__init__(f"{_where(method, path)} {kind}" + (f": {message}" if message else ""))


class APITimeoutError(APIConnectionError):
    """A connect, read, write or pool timeout, or a deadline passed (one attempt's, or the whole call's)."""


class ClientClosedError(IntakeQError):
    """The client was closed before this call could finish (or it was made after closing). Never retried.

    `maybe_sent` tells whether a request of this call may have reached the server before the close.
    """

    def __init__(self, *, method: str, path: str, maybe_sent: bool = False) -> None:
        self.method = method
        self.path = path.split("?", 1)[0]
        self.maybe_sent = maybe_sent
        when = "while the request was in flight (it may have reached the server)" if maybe_sent else "before sending"
        super().__init__(f"{_where(method, path)}: the client was closed {when}")


class RateLimiterUnavailableError(IntakeQError):
    """The shared rate limiter (Redis) cannot be reached and `on_redis_error="fail"` was chosen; nothing was sent."""


class ResponseValidationError(IntakeQError):
    """A 2xx response whose body is not JSON or not the expected shape."""

    def __init__(self, *, status_code: int, method: str, path: str, body_excerpt: str, reason: str) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path.split("?", 1)[0]
        self.body_excerpt = body_excerpt
        self.reason = reason
        super().__init__(f"unexpected {status_code} response body on {_where(method, path)}: {reason}")


class ResponseTooLargeError(ResponseValidationError):
    """A 2xx answer larger than `max_response_size` once decompressed; it was not read to the end."""

    def __init__(self, *, status_code: int, method: str, path: str, limit: int) -> None:
        self.limit = limit
        super().__init__(
            status_code=status_code,
            method=method,
            path=path,
            body_excerpt="",
            reason=f"the body is larger than max_response_size ({limit} bytes decoded)",
        )


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds) or seconds > MAX_READABLE_RETRY_AFTER:
        return None  # "inf", "1e400", years ahead: a broken header, not a wait anyone should honour
    return max(0.0, seconds)


def sent_key(source: httpx.Response | httpx.TransportError) -> str | None:
    """The key sent with the request behind a response or a failure (to mask it if it comes back)."""
    try:
        key: str | None = source.request.headers.get(AUTH_HEADER)
    except RuntimeError:  # made by hand, without a request
        return None
    return key


# Codecs Python counts as text encodings that are no charset a body is written in: they turn any bytes into
# other text (Python 3.13's punycode reads b"failure" as CJK characters instead of refusing it as 3.11 did).
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})


def _text(content: bytes, charset: str | None) -> str:
    """Bytes as text in the declared charset if it is a text encoding that works, else UTF-8 with replacement.

    A Content-Type may name any codec Python knows, and some are not text encodings at all (hex, base64,
    rot13), are domain-name or escape encodings (idna, punycode) or refuse `errors="replace"`: none of that may
    turn an error answer into a crash or into a different text.
    """
    if charset:
        try:
            if codecs.lookup(charset).name not in _NOT_CHARSETS:
                return content.decode(charset, errors="replace")  # LookupError for codecs that are not text
        except (LookupError, UnicodeError, ValueError, TypeError):
            pass
    return content.decode("utf-8", errors="replace")


def body_excerpt(response: httpx.Response) -> str:
    """At most ERROR_BODY_LIMIT bytes of the body as text, with keys and credential values masked."""
    # Mask before cutting, so that a key straddling the limit cannot leave a prefix behind; and read on until
    # the masked text still reaches 1 KB past the limit (masking a long token value shortens it), so that a
    # key cut off where reading stopped stays out of the excerpt too.
    read = ERROR_BODY_LIMIT + 1024
    while True:
        head = _text(response.content[:read], response.charset_encoding)
        masked = redact(head, sent_key(response)).encode()
        if len(masked) >= ERROR_BODY_LIMIT + 1024 or read >= len(response.content):
            return masked[:ERROR_BODY_LIMIT].decode(errors="ignore")
        read *= 4


def strip_bom(content: bytes) -> bytes:
    """JSON without the UTF-8 byte-order mark that IIS and .NET stacks may put first."""
    return content[3:] if content[:3] == b"\xef\xbb\xbf" else content


def _message(response: httpx.Response) -> str | None:
    try:
        data = json.loads(strip_bom(response.content))
    except (ValueError, RecursionError):  # RecursionError: a hostile body of deeply nested arrays
        return None
    if isinstance(data, dict):
        for name in ("Message", "message", "error"):
            if isinstance(data.get(name), str) and data[name]:
                # Mask before cutting, as in body_excerpt: a cut through the key would leave its prefix.
                return redact(data[name], sent_key(response))[:ERROR_BODY_LIMIT]
    return None


def error_from_response(response: httpx.Response, method: str, path: str) -> APIStatusError:
    """The typed error for a non-2xx response."""
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIStatusError)
    request_id = next((response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None)
    if request_id is not None:  # a server may echo anything there, the key it was sent included
        request_id = redact(request_id, sent_key(response))[:200]
    error = cls(
        status_code=status,
        method=method,
        path=path,
        request_id=request_id,
        body_excerpt=body_excerpt(response),
        message=_message(response),
    )
    if isinstance(error, RateLimitError):
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed write may nonetheless have been applied, so it must not simply be sent again."""
    if isinstance(exc, (ServerError, ResponseValidationError)):
        return True
    if isinstance(exc, APIConnectionError):
        return exc.maybe_sent
    return False
