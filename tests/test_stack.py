"""The HTTP stack: which one a client picks, and what the aiohttp one promises the retry rules.

Failures are made by the raw-socket servers of tests/rawservers.py, and run under both stacks where both must
behave the same.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import aiohttp
import httpx
import pytest
from conftest import FAST, STACKS
from rawservers import Reply, Seen, hang, respond, sequence, serve

from intakeq_partner import APIConnectionError, APIStatusError, APITimeoutError, PartnerClient, PracticeClient
from intakeq_partner._aiohttp import AiohttpTransport, _raise_mapped
from intakeq_partner._errors import IntakeQError, InvalidRequestError
from intakeq_partner._pool import ShardedTransport
from intakeq_partner._retry import should_retry
from intakeq_partner._secret import Secret
from intakeq_partner._transport import Transport

MARKER = "STACK-KEY-9d1e77"
KEY = Secret(MARKER)
PATH = "/api/partner/practice"


async def close_without_answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def reset_without_answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
    writer.transport.abort()


def answering(raw: bytes, *, keep_open: bool = False) -> Reply:
    """Exactly these bytes, then the connection closes (or stays open for the next request)."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        if not keep_open:
            await writer.drain()
            writer.close()

    return answer


def transport(stack: str, base_url: str, **options: Any) -> Transport:
    return Transport(base_url=base_url, http_stack=stack, **{**FAST, **options})  # type: ignore[arg-type]


def assert_ours_and_clean(exc: BaseException) -> None:
    """A typed error of ours, chained to nothing from a library, with no key or query value in its text."""
    assert isinstance(exc, IntakeQError)
    link: BaseException | None = exc
    while link is not None:
        assert not type(link).__module__.startswith(("aiohttp", "httpx", "httpcore")), type(link)
        link = link.__cause__ or link.__context__
    for text in (str(exc), repr(exc), repr(vars(exc))):
        assert MARKER not in text and "u-77" not in text


# --- which stack -------------------------------------------------------------------------------------------------


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("INTAKEQ_HTTP_STACK", raising=False)
    return monkeypatch


async def test_aiohttp_is_chosen_when_installed_and_either_stack_can_be_asked_for(no_proxy: pytest.MonkeyPatch) -> None:
    async with PartnerClient("k" * 20, base_url="https://api.test") as auto:
        assert auto.http_stack == "aiohttp"
        assert isinstance(auto._transport._channel.client._transport, AiohttpTransport)
        assert "http_stack='aiohttp'" in repr(auto)
        assert auto.practice("p-1").http_stack == "aiohttp"
    async with PartnerClient("k" * 20, base_url="https://api.test", http_stack="httpx") as plain:
        assert plain.http_stack == "httpx" and isinstance(plain._transport._channel.client._transport, ShardedTransport)
    async with PracticeClient("k" * 20, base_url="https://api.test", http_stack="aiohttp") as fast:
        assert fast.http_stack == "aiohttp" and "http_stack='aiohttp'" in repr(fast)
    no_proxy.setenv("INTAKEQ_HTTP_STACK", "httpx")
    async with PartnerClient("k" * 20, base_url="https://api.test") as from_env:
        assert from_env.http_stack == "httpx"


async def test_a_proxy_in_the_environment_or_a_missing_aiohttp_means_httpx(no_proxy: pytest.MonkeyPatch) -> None:
    no_proxy.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    async with Transport(base_url="https://api.test") as behind_proxy:
        assert behind_proxy.http_stack == "httpx"
    async with Transport(base_url="https://api.test", http_stack="aiohttp") as asked:
        assert asked.http_stack == "aiohttp"  # asked for explicitly: aiohttp reads the same variables
    no_proxy.delenv("HTTPS_PROXY")
    no_proxy.setattr("intakeq_partner._stack.aiohttp_available", lambda: False)
    async with Transport(base_url="https://api.test") as without:
        assert without.http_stack == "httpx"
    with pytest.raises(InvalidRequestError, match=r"intakeq-partner\[fast\]"):
        Transport(base_url="https://api.test", http_stack="aiohttp")


async def test_a_users_own_client_is_custom_and_bad_choices_fail_before_sending(no_proxy: pytest.MonkeyPatch) -> None:
    mock = httpx.MockTransport(lambda r: httpx.Response(200))
    async with Transport(base_url="https://api.test", transport=mock) as own:
        assert own.http_stack == "custom"
    with pytest.raises(InvalidRequestError, match="http_stack"):
        Transport(base_url="https://api.test", transport=mock, http_stack="aiohttp")
    with pytest.raises(InvalidRequestError, match="http_stack"):
        Transport(base_url="https://api.test", http_stack="curl")  # type: ignore[arg-type]
    no_proxy.setenv("INTAKEQ_HTTP_STACK", "curl")
    with pytest.raises(InvalidRequestError, match="INTAKEQ_HTTP_STACK"):
        Transport(base_url="https://api.test")


# --- what a failure means for a resend -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("drop", [close_without_answer, reset_without_answer], ids=["closed", "reset"])
async def test_a_post_whose_connection_breaks_after_it_was_written_is_maybe_sent_and_sent_once(
    stack: str, drop: Reply
) -> None:
    async with serve(drop) as server, transport(stack, server.base_url) as t:
        with pytest.raises(APIConnectionError) as caught:
            await t.request("POST", PATH, key=KEY, json={"PracticeName": "x"}, params={"userId": "u-77"})
    assert not isinstance(caught.value, APITimeoutError)
    assert caught.value.maybe_sent is True
    assert len(server.requests) == 1  # never resent: the server may have acted on it
    assert_ours_and_clean(caught.value)


@pytest.mark.parametrize("stack", STACKS)
async def test_a_connection_closed_halfway_through_a_head_is_said_in_words(stack: str) -> None:
    async with serve(answering(b"HTTP/1.1 200 OK\r\nContent-Ty")) as server, transport(stack, server.base_url) as t:
        with pytest.raises(APIConnectionError) as caught:
            await t.request("POST", PATH, key=KEY, json={"PracticeName": "x"})
    assert caught.value.maybe_sent is True and len(server.requests) == 1
    assert "disconnected" in str(caught.value) and "Message" not in str(caught.value)  # not a parser's object
    assert_ours_and_clean(caught.value)


@pytest.mark.parametrize("stack", STACKS)
async def test_a_get_whose_connection_breaks_is_retried_by_us_alone(stack: str) -> None:
    async with serve(close_without_answer) as server, transport(stack, server.base_url, max_retries=2) as t:
        with pytest.raises(APIConnectionError) as caught:
            await t.request("GET", PATH, key=KEY)
    assert len(server.requests) == 3  # 1 + our 2 retries; aiohttp's own silent resend is off
    assert_ours_and_clean(caught.value)


@pytest.mark.parametrize("stack", STACKS)
async def test_a_refused_connection_is_nothing_sent_so_even_a_post_is_retried(
    stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="intakeq_partner")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    async with transport(stack, f"http://127.0.0.1:{port}", max_retries=1) as t:
        with pytest.raises(APIConnectionError) as caught:
            await t.request("POST", PATH, key=KEY, json={})
    assert caught.value.maybe_sent is False
    attempts = [r for r in caplog.records if r.name == "intakeq_partner" and r.levelno == logging.DEBUG]
    assert len(attempts) == 2  # sent again: nothing had left
    assert_ours_and_clean(caught.value)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 two hundred OK\r\n\r\n",
        b"SMTP ready\r\n\r\n",
        b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"Id":',  # then the connection closes
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Bad Header: 1\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=["status-line", "not-http", "truncated-body", "bad-chunk", "bad-header"],
)
async def test_a_garbled_answer_is_a_typed_maybe_sent_error_never_a_library_exception(stack: str, raw: bytes) -> None:
    async with serve(answering(raw)) as server, transport(stack, server.base_url, max_retries=0) as t:
        with pytest.raises(IntakeQError) as caught:
            await t.request("POST", PATH, key=KEY, json={}, params={"userId": "u-77"})
    assert isinstance(caught.value, APIConnectionError) and caught.value.maybe_sent is True
    assert_ours_and_clean(caught.value)


@pytest.mark.parametrize("stack", STACKS)
async def test_an_answer_slower_than_the_read_timeout_is_a_maybe_sent_timeout(stack: str) -> None:
    async with serve(hang()) as server, transport(stack, server.base_url, timeout=0.2, max_retries=0) as t:
        with pytest.raises(APITimeoutError) as caught:
            await t.request("POST", PATH, key=KEY, json={})
    assert caught.value.maybe_sent is True and len(server.requests) == 1
    assert_ours_and_clean(caught.value)


@pytest.mark.parametrize("stack", STACKS)
async def test_a_redirect_is_answered_as_it_is_never_followed(stack: str) -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/steal\r\nContent-Length: 0\r\n\r\n"
    async with serve(answering(moved, keep_open=True)) as server, transport(stack, server.base_url) as t:
        with pytest.raises(APIStatusError) as caught:
            await t.request("GET", PATH, key=KEY)
    assert caught.value.status_code == 302 and len(server.requests) == 1


@pytest.mark.parametrize("stack", STACKS)
async def test_a_cancelled_request_leaves_no_connection_slot_held(stack: str) -> None:
    arrived = asyncio.Event()

    async def first_hangs(seen: Seen, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await asyncio.Event().wait()  # until the server stops

    reply = sequence([first_hangs, respond(200, {})])
    async with serve(reply) as server, transport(stack, server.base_url, max_concurrency=1) as t:
        stuck = asyncio.create_task(t.request("GET", PATH, key=KEY))
        await asyncio.wait_for(arrived.wait(), 5)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        answer = await asyncio.wait_for(t.request("GET", PATH, key=KEY), 5)  # the one slot is free again
    assert answer.json() == {}


# --- connection reuse -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("late", [False, True], ids=["same-packet", "later"])
async def test_bytes_after_an_answer_end_its_connection_even_when_they_come_later(stack: str, late: bool) -> None:
    """Later: they arrive while the connection waits in the pool (aiohttp alone would read them as the next
    request's answer; tests/test_hostile_servers.py covers the same-packet case with creates)."""
    forged = b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"forged":1}\n'

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        body = b'{"n":%d}' % seen.connection
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        if late:
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(forged)

    async with serve(answer) as server, transport(stack, server.base_url) as t:
        answers = []
        for _ in range(3):
            answers.append((await t.request("GET", PATH, key=KEY)).json())
            await asyncio.sleep(0.1)  # the late bytes arrive while the connection waits in the pool
    assert answers == [{"n": 1}, {"n": 2}, {"n": 3}]  # each on a new connection
    assert server.connections == 3


# --- the mapping itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected", "nothing_sent"),
    [
        (aiohttp.ConnectionTimeoutError("pool or connect"), httpx.ConnectTimeout, True),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError, False),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError, False),
        (aiohttp.ClientConnectionResetError("Cannot write to closing transport"), httpx.ReadError, False),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout, False),
        (aiohttp.ClientPayloadError("incomplete"), httpx.RemoteProtocolError, False),
        (TimeoutError(), httpx.ReadTimeout, False),
        (aiohttp.ClientError("anything else"), httpx.RemoteProtocolError, False),
    ],
)
def test_each_aiohttp_failure_maps_to_what_it_means_for_a_resend(
    raised: BaseException, expected: type[httpx.TransportError], nothing_sent: bool
) -> None:
    with pytest.raises(httpx.TransportError) as caught:
        _raise_mapped(raised)
    assert type(caught.value) is expected
    assert caught.value.__cause__ is None
    assert should_retry(caught.value, idempotent=False) is nothing_sent  # a POST is resent only when nothing left


@pytest.mark.parametrize("stack", STACKS)
async def test_a_cookie_from_one_answer_never_rides_along_with_the_next_request(stack: str) -> None:
    """Keys go per request; a cookie set in one practice's answer must not reach another practice's calls."""
    setter = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 2\r\n\r\n{}"
    async with serve(answering(setter, keep_open=True)) as server, transport(stack, server.base_url) as t:
        await t.request("GET", PATH, key=KEY)
        await t.request("GET", PATH, key=Secret("another-practice-key"))
    assert len(server.requests) == 2 and "cookie" not in server.requests[1].headers


async def test_no_cookie_is_kept_behind_a_proxy_either(no_proxy: pytest.MonkeyPatch) -> None:
    """With a proxy in the environment httpx sends through its own pool; its cookie jar must keep nothing."""
    no_proxy.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # never used: NO_PROXY sends loopback direct
    no_proxy.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    no_proxy.setenv("NO_PROXY", "127.0.0.1")
    setter = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\nContent-Length: 2\r\n\r\n{}"
    async with serve(answering(setter, keep_open=True)) as server:
        async with PartnerClient("partner-key", base_url=server.base_url, **FAST) as client:
            assert client.http_stack == "httpx"
            await client.request("GET", PATH)
            await client.request("GET", PATH)
    assert len(server.requests) == 2 and "cookie" not in server.requests[1].headers


@pytest.mark.parametrize("stack", STACKS)
async def test_requests_sent_counts_every_attempt(stack: str) -> None:
    async with serve(close_without_answer) as server, transport(stack, server.base_url, max_retries=2) as t:
        with pytest.raises(APIConnectionError):
            await t.request("GET", PATH, key=KEY)
    assert t.requests_sent == len(server.requests) == 3


@pytest.mark.parametrize("stack", STACKS)
async def test_no_log_line_of_any_library_carries_the_key_on_either_stack(
    stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: aiohttp's, httpx's, httpcore's and asyncio's records too
    async with serve(respond(200, {})) as server, transport(stack, server.base_url, max_retries=0) as t:
        await t.request("GET", PATH, key=KEY, params={"userId": "u-77"})
    async with serve(close_without_answer) as server, transport(stack, server.base_url, max_retries=0) as t:
        with pytest.raises(APIConnectionError):
            await t.request("POST", PATH, key=KEY, json={})
    assert server.requests[0].headers["x-auth-key"] == MARKER  # the key did go on the wire...
    assert any(r.name == "intakeq_partner" for r in caplog.records)
    assert MARKER not in caplog.text  # ...and into no log line


@pytest.mark.parametrize("stack", STACKS)
async def test_a_view_with_a_shorter_timeout_applies_it_and_counts_on_the_shared_pool(stack: str) -> None:
    async with serve(hang()) as server, transport(stack, server.base_url, max_retries=0) as t:
        impatient = t.with_options(timeout=0.2)
        with pytest.raises(APITimeoutError):
            await impatient.request("GET", PATH, key=KEY)
    assert t.requests_sent == impatient.requests_sent == len(server.requests) == 1
