"""The transport: retries, limits, keys per request, and nothing secret in logs or errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from intakeq_partner._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    IntakeQError,
    InvalidRequestError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    is_ambiguous,
)
from intakeq_partner._retry import retry_delay, should_retry
from intakeq_partner._secret import Secret
from intakeq_partner._transport import Transport

pytestmark = pytest.mark.usefixtures("httpx_stack")  # respx mocks httpx's transports only

BASE = "https://api.test"
MARKER = "MARKER-KEY-5ecre7"
KEY = Secret(MARKER)
PATH = "/api/partner/practice"


class FakeSleep:
    """Records each requested delay instead of waiting; advances an optional fake clock."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock is not None:
            self.clock.now += delay


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def make(sleep: FakeSleep | None = None, **kwargs: Any) -> Transport:
    kwargs.setdefault("random", lambda: 1.0)  # jitter at its cap, so delays are predictable
    return Transport(base_url=kwargs.pop("base_url", BASE), sleep=sleep or FakeSleep(), **kwargs)


OK = httpx.Response(200, json={"ok": True})


# --- retries ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        httpx.Response(429),
        httpx.Response(502),
        httpx.Response(503),
        httpx.Response(504),
        httpx.Response(408),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
    ids=["429", "502", "503", "504", "408", "connect-error", "read-timeout"],
)
async def test_a_get_is_retried_after_a_transient_failure(router: respx.MockRouter, first: Any) -> None:
    route = router.get(PATH).mock(side_effect=[first, OK])
    clock = FakeClock()
    sleep = FakeSleep(clock)
    async with make(sleep, clock=clock) as t:
        response = await t.request("GET", PATH, key=KEY)
    assert response.json() == {"ok": True}
    assert route.call_count == 2
    # A 429 without Retry-After pauses the key for the default minute; everything else backs off.
    assert sleep.delays == ([60.0] if first.__class__ is httpx.Response and first.status_code == 429 else [0.5])


async def test_retry_after_in_seconds_sets_the_delay(router: respx.MockRouter) -> None:
    router.get(PATH).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), OK])
    clock = FakeClock()
    sleep = FakeSleep(clock)
    async with make(sleep, clock=clock) as t:
        await t.request("GET", PATH, key=KEY)
    assert sleep.delays == [7.0]


async def test_retry_after_as_an_http_date_sets_the_delay(router: respx.MockRouter) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    router.get(PATH).mock(side_effect=[httpx.Response(503, headers={"Retry-After": when}), OK])
    sleep = FakeSleep()
    async with make(sleep) as t:
        await t.request("GET", PATH, key=KEY)
    assert len(sleep.delays) == 1
    assert 27 <= sleep.delays[0] <= 30


async def test_a_retry_after_beyond_two_minutes_raises_at_once(router: respx.MockRouter) -> None:
    route = router.get(PATH).mock(return_value=httpx.Response(429, headers={"Retry-After": "121"}))
    sleep = FakeSleep()
    async with make(sleep) as t:
        with pytest.raises(RateLimitError) as info:
            await t.request("GET", PATH, key=KEY)
    assert info.value.retry_after == 121.0
    assert sleep.delays == []
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.Response(503), ServerError),
        (httpx.Response(429), RateLimitError),
        (httpx.ConnectError("refused"), APIConnectionError),
        (httpx.ConnectTimeout("slow"), APITimeoutError),
        (httpx.ReadTimeout("slow"), APITimeoutError),
    ],
    ids=["503", "429", "connect-error", "connect-timeout", "read-timeout"],
)
async def test_exhausted_retries_raise_the_last_failure(
    router: respx.MockRouter, failure: Any, error: type[IntakeQError]
) -> None:
    route = router.get(PATH).mock(side_effect=[failure] * 3)
    clock = FakeClock()
    sleep = FakeSleep(clock)
    async with make(sleep, clock=clock) as t:
        with pytest.raises(error) as info:
            await t.request("GET", PATH, key=KEY)
    assert type(info.value) is error
    assert route.call_count == 3  # the first try and max_retries=2 more
    if error is RateLimitError:  # each 429 pauses the key for the default minute
        assert sleep.delays == [60.0, 60.0]
    else:
        assert sleep.delays == [0.5, 1.0]  # backoff doubles (jitter pinned to its cap)


async def test_no_retries_when_max_retries_is_zero(router: respx.MockRouter) -> None:
    route = router.get(PATH).mock(side_effect=[httpx.Response(503), OK])
    async with make(max_retries=0) as t:
        with pytest.raises(ServerError):
            await t.request("GET", PATH, key=KEY)
    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadError("reset"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof"), 500, 502, 503],
    ids=["read-error", "read-timeout", "protocol-error", "500", "502", "503"],
)
async def test_a_post_is_not_resent_when_the_server_may_have_acted(router: respx.MockRouter, failure: Any) -> None:
    side = httpx.Response(failure) if isinstance(failure, int) else failure
    route = router.post(PATH).mock(side_effect=[side, OK])
    async with make() as t:
        with pytest.raises(IntakeQError) as info:
            await t.request("POST", PATH, key=KEY, json={"Name": "x"})
    assert route.call_count == 1
    assert is_ambiguous(info.value)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy"), httpx.Response(429)],
    ids=["connect-error", "connect-timeout", "pool-timeout", "429"],
)
async def test_a_post_is_resent_when_nothing_reached_the_server(router: respx.MockRouter, failure: Any) -> None:
    route = router.post(PATH).mock(side_effect=[failure, OK])
    async with make() as t:
        await t.request("POST", PATH, key=KEY, json={"Name": "x"})
    assert route.call_count == 2


async def test_a_post_marked_idempotent_is_retried_like_a_get(router: respx.MockRouter) -> None:
    route = router.post(PATH).mock(side_effect=[httpx.Response(502), OK])
    async with make() as t:
        await t.request("POST", PATH, key=KEY, idempotent=True)
    assert route.call_count == 2


async def test_a_get_marked_not_idempotent_is_not_retried_after_a_503(router: respx.MockRouter) -> None:
    route = router.get(PATH).mock(side_effect=[httpx.Response(503), OK])
    async with make() as t:
        with pytest.raises(ServerError):
            await t.request("GET", PATH, key=KEY, idempotent=False)
    assert route.call_count == 1


async def test_a_500_is_retried_for_a_get_but_not_for_a_post(router: respx.MockRouter) -> None:
    read = router.get(PATH).mock(side_effect=[httpx.Response(500), OK])
    write = router.post(PATH).mock(side_effect=[httpx.Response(500), OK])
    async with make() as t:
        assert (await t.request("GET", PATH, key=KEY)).status_code == 200
        with pytest.raises(ServerError):
            await t.request("POST", PATH, key=KEY, json={})
    assert read.call_count == 2 and write.call_count == 1


async def test_client_errors_are_raised_without_retry_and_the_path_is_sent_as_given(
    router: respx.MockRouter,
) -> None:
    route = router.get(path__startswith=PATH).mock(side_effect=[httpx.Response(401, json={"Message": "bad key"}), OK])
    async with make() as t:
        with pytest.raises(AuthenticationError) as info:
            await t.request("GET", PATH + "/a%2Fb", key=KEY, params={"page": "2"})
    assert route.call_count == 1
    assert route.calls.last.request.url.raw_path == b"/api/partner/practice/a%2Fb?page=2"
    assert info.value.path == PATH + "/a%2Fb"
    assert info.value.message == "bad key"


def test_should_retry_decisions() -> None:
    assert should_retry(httpx.Response(429), idempotent=False)
    assert not should_retry(httpx.Response(503), idempotent=False)
    assert should_retry(httpx.Response(503), idempotent=True)
    assert should_retry(httpx.Response(500), idempotent=True)
    assert not should_retry(httpx.Response(500), idempotent=False)
    assert not should_retry(httpx.Response(404), idempotent=True)
    assert should_retry(httpx.ConnectError("x"), idempotent=False)
    assert not should_retry(httpx.ReadError("x"), idempotent=False)
    assert should_retry(httpx.ReadError("x"), idempotent=True)
    assert not should_retry(httpx.UnsupportedProtocol("x"), idempotent=True)


@given(
    attempt=st.integers(min_value=0, max_value=100),
    r=st.floats(min_value=0.0, max_value=1.0),
    initial=st.floats(min_value=0.0, max_value=5.0),
    cap=st.floats(min_value=0.0, max_value=60.0),
)
def test_backoff_is_full_jitter_within_the_cap(attempt: int, r: float, initial: float, cap: float) -> None:
    delay = retry_delay(attempt, None, initial_delay=initial, max_delay=cap, random=lambda: r)
    assert delay is not None
    assert 0.0 <= delay <= min(cap, initial * 2.0 ** min(attempt, 32))


def test_backoff_spans_the_whole_range_and_grows() -> None:
    assert retry_delay(0, None, random=lambda: 0.0) == 0.0
    assert [retry_delay(n, None, random=lambda: 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert retry_delay(3, 9.0, random=lambda: 0.0) == 9.0  # Retry-After replaces the backoff
    assert retry_delay(0, 120.0, random=lambda: 0.0) == 120.0
    assert retry_delay(0, 120.5, random=lambda: 0.0) is None


# --- construction ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://intakeq.com", "http://10.0.0.1:8000", "ftp://intakeq.com", "intakeq.com", "https://u:p@x.com"]
)
def test_insecure_or_odd_base_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidRequestError):
        Transport(base_url=url)


@pytest.mark.parametrize(
    "url", ["https://intakeq.com", "http://127.0.0.1:8765", "http://127.3.4.5", "http://localhost:1", "http://[::1]:80"]
)
async def test_https_and_loopback_http_base_urls_are_accepted(url: str) -> None:
    async with Transport(base_url=url):
        pass


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_concurrency": 0},
        {"rate_limit": 0.0},
        {"initial_delay": -1.0},
        {"rate_limit": float("inf")},
        {"max_concurrency": float("inf")},
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        Transport(base_url=BASE, **kwargs)


async def test_a_plain_string_key_is_refused_before_sending(router: respx.MockRouter) -> None:
    route = router.get(PATH).mock(return_value=OK)
    async with make() as t:
        with pytest.raises(InvalidRequestError):
            await t.request("GET", PATH, key=MARKER)  # type: ignore[call-overload]
    assert route.call_count == 0


@pytest.mark.parametrize("path", ["api/x", "/api/x?userId=1", "/api/x#frag"])
async def test_a_path_with_a_query_is_refused_so_query_values_never_reach_logs(
    router: respx.MockRouter, path: str
) -> None:
    route = router.route().mock(return_value=OK)
    async with make() as t:
        with pytest.raises(InvalidRequestError) as info:
            await t.request("GET", path, key=KEY)
    assert "userId=1" not in str(info.value)
    assert route.call_count == 0


async def test_default_timeouts_are_explicit(router: respx.MockRouter) -> None:
    route = router.get(PATH).mock(return_value=OK)
    async with make() as t:
        await t.request("GET", PATH, key=KEY)
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}


# --- clients ---------------------------------------------------------------------------------------------------


async def test_a_client_handed_in_is_used_and_left_open(router: respx.MockRouter) -> None:
    router.get(PATH).mock(return_value=OK)
    client = httpx.AsyncClient(headers={"X-Mine": "1"})
    async with make(http_client=client) as t:
        await t.request("GET", PATH, key=KEY)
    assert not client.is_closed
    assert router.calls.last.request.headers["X-Mine"] == "1"
    await client.aclose()


async def test_our_own_client_is_closed_with_the_transport() -> None:
    closed: list[bool] = []

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={})

        async def aclose(self) -> None:
            closed.append(True)

    async with make(transport=Recording()) as t:
        await t.request("GET", PATH, key=KEY)
    assert closed == [True]


async def test_each_request_carries_its_own_key_and_our_user_agent(router: respx.MockRouter) -> None:
    async def echo(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # interleave the concurrent requests
        return httpx.Response(200, json={"key": request.headers["X-Auth-Key"]})

    router.get(PATH).mock(side_effect=echo)
    keys = [Secret(f"practice-key-{i}") for i in range(50)]
    async with make() as t:
        responses = await asyncio.gather(*(t.request("GET", PATH, key=k) for k in keys))
    assert [r.json()["key"] for r in responses] == [k.reveal() for k in keys]
    assert router.calls.last.request.headers["User-Agent"].startswith("intakeq-partner/")


# --- limits ----------------------------------------------------------------------------------------------------


async def test_max_concurrency_bounds_requests_in_flight(router: respx.MockRouter) -> None:
    in_flight = peak = 0
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return httpx.Response(200, json={})

    router.get(PATH).mock(side_effect=slow)
    async with make(max_concurrency=3) as t:
        # Ten keys (one key starts with one send in flight: slow start, tests/test_pacing.py).
        keys = [Secret(f"{MARKER}-{n}") for n in range(10)]
        tasks = [asyncio.create_task(t.request("GET", PATH, key=key)) for key in keys]
        for _ in range(50):
            await asyncio.sleep(0)
        assert in_flight == 3
        release.set()
        await asyncio.gather(*tasks)
    assert peak == 3
    assert len(router.calls) == 10


async def test_a_request_waiting_to_retry_does_not_hold_a_concurrency_slot(router: respx.MockRouter) -> None:
    gate = asyncio.Event()

    async def sleep(delay: float) -> None:
        await gate.wait()

    router.get(PATH + "/a").mock(side_effect=[httpx.Response(503), OK])
    router.get(PATH + "/b").mock(return_value=OK)
    async with Transport(base_url=BASE, max_concurrency=1, sleep=sleep) as t:
        first = asyncio.create_task(t.request("GET", PATH + "/a", key=KEY))
        for _ in range(20):
            await asyncio.sleep(0)
        # `first` is now sleeping before its retry; another request must get through meanwhile.
        await asyncio.wait_for(t.request("GET", PATH + "/b", key=KEY), timeout=1)
        gate.set()
        await first


async def test_rate_limit_spaces_requests_from_every_caller(router: respx.MockRouter) -> None:
    clock = FakeClock()
    started: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        started.append(clock())
        return httpx.Response(200, json={})

    router.get(PATH).mock(side_effect=record)
    sleep = FakeSleep(clock)
    async with make(sleep, rate_limit=10.0, clock=clock) as t:
        for i in range(4):  # two "callers" with different keys share one budget
            await t.request("GET", PATH, key=Secret(f"k{i % 2}"))
    assert started == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert sleep.delays == pytest.approx([0.1, 0.1, 0.1])


async def test_rate_limit_slots_are_reserved_for_concurrent_callers(router: respx.MockRouter) -> None:
    router.get(PATH).mock(return_value=OK)
    sleep = FakeSleep()  # the clock stands still: each caller must wait one more interval than the last
    async with make(sleep, rate_limit=4.0, clock=lambda: 100.0) as t:
        await asyncio.gather(*(t.request("GET", PATH, key=KEY) for _ in range(5)))
    assert sorted(sleep.delays) == pytest.approx([0.25, 0.5, 0.75, 1.0])


async def test_a_caller_cancelled_while_waiting_for_its_rate_slot_does_not_let_a_later_one_jump_the_window(
    router: respx.MockRouter,
) -> None:
    """With rate 1/s, C must wait for A to finish (plus a second) even if B, queued between them, gave up."""
    clock = FakeClock()
    release_a = asyncio.Event()
    sent: list[str] = []

    async def sleep(delay: float) -> None:
        clock.now += delay
        await asyncio.sleep(0)

    async def slow(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        await release_a.wait()
        return httpx.Response(200, json={})

    def fast(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={})

    router.get(PATH + "/a").mock(side_effect=slow)
    router.get(PATH + "/c").mock(side_effect=fast)

    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async with Transport(base_url=BASE, rate_limit=1.0, sleep=sleep, clock=clock) as t:
        a = asyncio.create_task(t.request("GET", PATH + "/a", key=KEY))
        await settle()
        b = asyncio.create_task(t.request("GET", PATH + "/b", key=KEY))
        await settle()  # B now waits for A to finish
        b.cancel()
        with pytest.raises(asyncio.CancelledError):
            await b
        c = asyncio.create_task(t.request("GET", PATH + "/c", key=KEY))
        await settle()
        assert sent == [PATH + "/a"]  # A is still in flight: C would make two in one second
        release_a.set()
        await asyncio.gather(a, c)
    assert sent == [PATH + "/a", PATH + "/c"]


# --- secrecy ---------------------------------------------------------------------------------------------------


async def test_no_log_line_or_error_text_ever_contains_the_key(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records, httpx's included
    router.get(PATH).mock(side_effect=[httpx.Response(503), OK])
    router.get(PATH + "/denied").mock(return_value=httpx.Response(401, json={"Message": f"bad key {MARKER}"}))
    router.get(PATH + "/down").mock(side_effect=httpx.ConnectError(f"cannot reach {BASE}"))
    router.post(PATH + "/slow").mock(side_effect=httpx.ReadTimeout("slow"))
    errors: list[BaseException] = []
    async with make(clock=FakeClock()) as t:
        await t.request("GET", PATH, key=KEY, params={"userId": "u-77"})
        for method, path in [("GET", "/denied"), ("GET", "/down"), ("POST", "/slow")]:
            try:
                await t.request(method, PATH + path, key=KEY)
            except IntakeQError as exc:
                errors.append(exc)
    assert len(errors) == 3
    for error in errors:
        assert MARKER not in str(error)
        assert MARKER not in repr(error)
        assert MARKER not in repr(vars(error))
    assert MARKER not in caplog.text
    ours = [r.getMessage() for r in caplog.records if r.name == "intakeq_partner"]
    attempts = [r.getMessage() for r in caplog.records if r.name == "intakeq_partner" and r.levelno == logging.DEBUG]
    calls = [r.getMessage() for r in caplog.records if r.name == "intakeq_partner" and r.levelno == logging.INFO]
    assert len(attempts) == 7  # one line per attempt: 2 + 1 + 3 + 1
    assert len(calls) == 4 and len(ours) == 11  # and one per call, at INFO
    assert "GET /api/partner/practice -> 503 in 0 ms (attempt 1), retry in 0.50 s" in attempts[0]
    assert not any("u-77" in line for line in ours)  # query values stay out of our lines


async def test_no_log_line_over_a_real_socket_contains_the_key(caplog: pytest.LogCaptureFixture) -> None:
    """Through httpcore for real (respx would skip its connection-level logging)."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caplog.set_level(logging.DEBUG)
    async with server, make(base_url=f"http://127.0.0.1:{port}", transport=httpx.AsyncHTTPTransport()) as t:
        response = await t.request("GET", PATH, key=KEY)
    assert response.json() == {}
    assert MARKER.encode() in seen[0]  # the key did go on the wire...
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert MARKER not in caplog.text  # ...and into no log line


def _strict(response: httpx.Response) -> Any:
    """A parser that refuses anything but {"ok": true}, as the wire decoder refuses a wrong shape."""
    if response.content != b'{"ok":true}':
        raise ResponseValidationError(
            status_code=response.status_code, method="X", path=PATH, body_excerpt="", reason="wrong shape"
        )
    return "parsed"


async def test_an_unreadable_answer_is_asked_again_for_a_get_but_raised_for_a_post(router: respx.MockRouter) -> None:
    garbled = httpx.Response(200, content=b"<html>maintenance</html>")
    read = router.get(PATH).mock(side_effect=[garbled, OK])
    write = router.post(PATH).mock(side_effect=[garbled, OK])
    async with make() as t:
        assert await t.request("GET", PATH, key=KEY, parse=_strict) == "parsed"
        with pytest.raises(ResponseValidationError):
            await t.request("POST", PATH, key=KEY, json={}, parse=_strict)
    assert read.call_count == 2 and write.call_count == 1


async def test_a_connection_error_does_not_carry_the_request_and_its_key_along(router: respx.MockRouter) -> None:
    router.get(PATH).mock(side_effect=httpx.ConnectError("refused"))
    async with make(max_retries=0) as t:
        with pytest.raises(APIConnectionError) as caught:
            await t.request("GET", PATH, key=KEY)
    chained: list[BaseException] = []
    exc: BaseException | None = caught.value
    while exc is not None:
        chained.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert not any(isinstance(e, httpx.HTTPError) for e in chained)
    assert "ConnectError: refused" in str(caught.value)
