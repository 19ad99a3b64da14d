"""Error responses become typed, short, key-free exceptions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from intakeq_partner._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IntakeQError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    error_from_response,
    is_ambiguous,
    parse_retry_after,
)
from intakeq_partner._secret import Secret

MARKER = "MARKER-KEY-c0ffee1234"
PATH = "/api/partner/practice/x"


def response(status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("GET", f"https://api.test{PATH}?userId=u1", headers={"X-Auth-Key": MARKER})
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=content, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (418, APIStatusError),
        (302, APIStatusError),
    ],
)
def test_each_status_maps_to_its_error_class(status: int, cls: type[APIStatusError]) -> None:
    err = error_from_response(response(status, json.dumps({"Message": "nope"})), "GET", PATH + "?userId=u1")
    assert type(err) is cls
    assert isinstance(err, IntakeQError)
    assert (err.status_code, err.method, err.path, err.message) == (status, "GET", PATH, "nope")
    assert "userId" not in str(err)


def test_message_reads_like_a_log_line() -> None:
    err = error_from_response(response(404, '{"Message": "Practice not found."}'), "GET", PATH)
    assert str(err) == "404 Not Found on GET /api/partner/practice/x: Practice not found."


def test_request_id_is_taken_from_the_response_headers() -> None:
    err = error_from_response(response(500, "oops", {"X-Request-Id": "req-42"}), "POST", PATH)
    assert err.request_id == "req-42"
    assert "req-42" in str(err)
    assert error_from_response(response(500, "oops", {"Request-Id": "r-7"}), "POST", PATH).request_id == "r-7"


def test_non_json_body_gives_no_message_but_keeps_an_excerpt() -> None:
    err = error_from_response(response(502, "<html>Bad gateway</html>"), "GET", PATH)
    assert err.message is None
    assert err.body_excerpt == "<html>Bad gateway</html>"
    assert str(err) == "502 Bad Gateway on GET /api/partner/practice/x"


def test_body_excerpt_is_at_most_2_kb_and_tolerates_bad_bytes() -> None:
    err = error_from_response(response(500, b"\xff\xfe" + "é".encode() * 5000), "GET", PATH)
    assert len(err.body_excerpt.encode()) <= 2048
    assert err.body_excerpt.startswith("\ufffd")
    assert len(err.body_excerpt) > 1000


def test_a_key_echoed_by_the_server_is_masked_everywhere() -> None:
    head = json.dumps({"Message": f"Invalid key {MARKER}", "Pad": ""})[:-2]
    body = head + " " * (2040 - len(head)) + MARKER + '"}'  # the second copy straddles the 2 KB cut
    assert body.index(MARKER, len(head)) == 2040
    err = error_from_response(response(401, body), "GET", PATH)
    for text in (str(err), repr(err), err.body_excerpt, err.message or ""):
        assert MARKER not in text
        assert MARKER[:8] not in text
    assert "Invalid key ****" in str(err)


@pytest.mark.parametrize("separators", [(", ", ": "), (",", ":")], ids=["spaced", "compact"])
def test_a_held_key_cut_off_where_reading_stops_leaves_no_prefix_when_masking_shortens_the_text(
    separators: tuple[str, str],
) -> None:
    # The excerpt reads 1 KB past its 2 KB and masks before cutting; masking a long token value shortens the
    # text by more than that, so a held key cut off where reading stopped moved into the excerpt, unmasked.
    key = Secret("held-practice-key-" + "7f3a" * 6)
    head = json.dumps({"Token": "t" * 1500, "Message": "Invalid"}, separators=separators)[:-2]
    body = head + "x" * (2048 + 1024 - 12 - len(head)) + key.reveal() + '"}'  # 12 characters of it are read
    err = error_from_response(response(401, body), "GET", PATH)
    assert key.reveal()[:8] not in err.body_excerpt
    assert err.body_excerpt.startswith(json.dumps({"Token": "****"}, separators=separators)[:-1])
    assert err.body_excerpt.endswith('x****"}')  # read on: the key whole, and masked


def test_a_key_echoed_across_the_message_length_cut_leaves_no_prefix_in_the_message() -> None:
    message = "x" * (2048 - 8) + MARKER  # the key starts 8 characters before the cut
    err = error_from_response(response(401, json.dumps({"Message": message})), "GET", PATH)
    assert err.message is not None
    for text in (str(err), err.message, err.body_excerpt):
        assert MARKER[:8] not in text


def test_rate_limit_error_carries_retry_after() -> None:
    assert error_from_response(response(429, "", {"Retry-After": "12"}), "GET", PATH).retry_after == 12.0  # type: ignore[attr-defined]
    err = error_from_response(response(429), "GET", PATH)
    assert isinstance(err, RateLimitError)
    assert err.retry_after is None


def test_parse_retry_after_seconds_dates_and_garbage() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0.0
    for value in (None, "", "soon", "nan", "inf", "-inf", "1e400", "1e9"):  # not finite, or decades: unreadable
        assert parse_retry_after(value) is None
    assert parse_retry_after("86400") == 86400.0  # a day is a wait a server may mean
    far = format_datetime(now + timedelta(days=3650), usegmt=True)
    assert parse_retry_after(far, now=now) is None


def test_connection_errors_name_the_call_and_whether_it_may_have_arrived() -> None:
    err = APITimeoutError(method="POST", path=PATH + "?q=1", message="ReadTimeout", maybe_sent=True)
    assert isinstance(err, APIConnectionError)
    assert str(err) == "POST /api/partner/practice/x timed out: ReadTimeout"
    assert str(APIConnectionError(method="GET", path=PATH)) == "GET /api/partner/practice/x connection failed"


def test_is_ambiguous_only_for_failures_that_may_have_been_applied() -> None:
    def status(code: int) -> APIStatusError:
        return error_from_response(response(code), "POST", PATH)

    assert is_ambiguous(status(500))
    assert is_ambiguous(status(502))
    assert is_ambiguous(APIConnectionError(method="POST", path=PATH, maybe_sent=True))
    assert is_ambiguous(APITimeoutError(method="POST", path=PATH, maybe_sent=True))
    bad_body = ResponseValidationError(status_code=200, method="POST", path=PATH, body_excerpt="x", reason="not JSON")
    assert is_ambiguous(bad_body)
    assert not is_ambiguous(APIConnectionError(method="POST", path=PATH, maybe_sent=False))
    assert not is_ambiguous(status(429))
    assert not is_ambiguous(status(400))
    assert not is_ambiguous(InvalidRequestError("bad"))


def test_response_validation_error_text() -> None:
    err = ResponseValidationError(status_code=200, method="GET", path=PATH, body_excerpt="<html>", reason="not JSON")
    assert str(err) == "unexpected 200 response body on GET /api/partner/practice/x: not JSON"
    assert (err.status_code, err.body_excerpt, err.reason) == (200, "<html>", "not JSON")


def test_invalid_request_error_is_also_a_value_error() -> None:
    assert issubclass(InvalidRequestError, ValueError)
    assert issubclass(InvalidRequestError, IntakeQError)
