"""Against servers of our own that misbehave as the fake cannot: deadlines, size caps, framing, shutdown,
odd charsets and echoed keys. Every test runs on both HTTP stacks (the servers are in tests/rawservers.py)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import traceback
import tracemalloc
import zlib
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

import attrs
import httpx
import pytest
from conftest import FAST, STACKS
from rawservers import (
    RawServer,
    by_path,
    counts_characters,
    echo_key,
    gzip_bomb,
    hang,
    respond,
    sequence,
    serve,
    surplus,
    trickle,
    with_charset,
)

from intakeq_partner import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    IntakeQError,
    PartnerClient,
    RateLimits,
    ResponseTooLargeError,
    ResponseValidationError,
    ServerError,
)
from intakeq_partner._constants import DEFAULT_MAX_RESPONSE_SIZE
from intakeq_partner._errors import body_excerpt
from intakeq_partner._redact import redact
from intakeq_partner._secret import Secret
from intakeq_partner._transport import Transport

PARTNER_KEY = "hostile-partner-key-51c0de"
PRACTICES = "/api/partner/practice"
MASTER_FORMS = "/api/partner/masterForms"
PRACTICE = {"Id": "p-1", "PracticeName": "Clinic", "FirstName": "Ann", "LastName": "Lee", "Email": "a@x.test"}
NEW_PRACTICE: dict[str, Any] = {"practice_name": "Clinic", "first_name": "Ann", "last_name": "Lee", "email": "a@x.test"}


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client(server: RawServer, stack: str, **options: Any) -> PartnerClient:
    settings: dict[str, Any] = {**FAST, "http_stack": stack, **options}
    return PartnerClient(PARTNER_KEY, base_url=server.base_url, **settings)


# ----- 1. a total deadline per attempt and per call


@pytest.mark.parametrize("in_head", [False, True], ids=["body", "head"])
async def test_a_server_trickling_its_answer_is_cut_off_by_the_attempt_deadline_and_frees_the_slot(
    stack: str, in_head: bool
) -> None:
    """One byte every 0.1 s never trips the 30 s read timeout; only a total deadline ends the call."""
    slow = trickle(json.dumps([PRACTICE]).encode(), interval=0.1, in_head=in_head)
    routes = {("GET", PRACTICES): slow, ("GET", MASTER_FORMS): respond(200, [])}
    async with serve(by_path(routes)) as server:
        async with client(server, stack, attempt_timeout=1.0, max_retries=1, max_concurrency=1) as partner:
            with pytest.raises(APITimeoutError, match="attempt_timeout") as caught:
                await partner.practices.list()
            assert caught.value.maybe_sent
            # The only concurrency slot is free again: the next call goes through.
            assert await partner.forms.master() == []
    assert server.count("GET", PRACTICES) == 2  # a read: asked once more before giving up


async def test_a_post_past_its_attempt_deadline_is_not_sent_again(stack: str) -> None:
    # The answer takes 9 s; a deadline of 1 s (not less) leaves a loaded machine time to get the POST there.
    async with serve(trickle(json.dumps(PRACTICE).encode(), interval=0.1)) as server:
        async with client(server, stack, attempt_timeout=1.0) as partner:
            with pytest.raises(APITimeoutError) as caught:
                await partner.practices.create(**NEW_PRACTICE)
    assert caught.value.maybe_sent and server.count("POST") == 1


async def test_call_timeout_bounds_a_whole_call_retries_included(stack: str) -> None:
    slow = trickle(b"[]", interval=0.2)  # each attempt ends at attempt_timeout, and is retried
    async with serve(slow) as server:
        async with client(server, stack, attempt_timeout=0.3, max_retries=50, call_timeout=2.0) as partner:
            with pytest.raises(APITimeoutError, match="call_timeout"):
                await partner.practices.list()
    assert 2 <= server.count("GET") < 50


async def test_call_timeout_covers_the_practice_key_fetch(stack: str) -> None:
    async with serve(by_path({}, default=hang())) as server:
        async with client(server, stack, call_timeout=0.2, attempt_timeout=1.5, max_retries=0) as partner:
            with pytest.raises(APITimeoutError, match="call_timeout"):
                await partner.practice("p-1").practitioners.list()
            # The shared fetch runs under no caller's call_timeout (others may wait on it with longer ones), but
            # it is not left hanging either: attempt_timeout ends it.
            fetches = list(partner._keys._inflight.values())
            assert fetches
            done, _ = await asyncio.wait(fetches, timeout=10)
            assert done == set(fetches) and partner._keys._inflight == {} and "p-1" not in partner._keys
            assert all(isinstance(fetch.exception(), APITimeoutError) for fetch in fetches)
    assert [r.path for r in server.requests] == ["/api/partner/practice/p-1/key"]


# ----- 2. bounded responses


async def test_an_answer_over_the_size_cap_is_refused_and_not_asked_again(stack: str) -> None:
    big = [dict(PRACTICE, Id=f"p-{i}", PracticeName="x" * 1000) for i in range(2000)]  # about 2 MB
    async with serve(respond(200, big)) as server:
        async with client(server, stack, max_response_size=1024 * 1024) as partner:
            with pytest.raises(ResponseTooLargeError, match="max_response_size") as caught:
                await partner.practices.list()
    assert caught.value.limit == 1024 * 1024 and caught.value.status_code == 200
    assert server.count("GET") == 1  # the same answer would come again


@pytest.mark.parametrize("cap", [1024 * 1024, DEFAULT_MAX_RESPONSE_SIZE], ids=["1 MB cap", "default cap"])
async def test_a_gzip_bomb_is_refused_with_memory_near_the_cap_not_the_inflated_size(stack: str, cap: int) -> None:
    """About 200 KB on the wire, 200 MB inflated: memory may grow by about the cap, never by the 200 MB."""
    async with serve(gzip_bomb(200 * 1024 * 1024)) as server:
        async with client(server, stack, max_response_size=cap) as partner:
            tracemalloc.start()
            try:
                with pytest.raises(ResponseTooLargeError):
                    await partner.forms.master()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert peak < cap + 8 * 1024 * 1024, peak


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw deflate", "gzip, identity"])
async def test_compressed_answers_within_the_cap_are_decoded(stack: str, coding: str) -> None:
    body = json.dumps([{"Id": "f-1", "Name": "Intake"}] * 500).encode()
    if coding == "raw deflate":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data, header = packer.compress(body) + packer.flush(), "deflate"
    else:
        data, header = (zlib.compress(body) if coding == "deflate" else gzip.compress(body)), coding
    async with serve(respond(200, data, headers={"Content-Encoding": header})) as server:
        async with client(server, stack, max_response_size=len(body)) as partner:
            forms = await partner.forms.master()
    assert len(forms) == 500 and server.requests[0].headers["accept-encoding"] == "gzip, deflate"


async def test_an_encoding_we_did_not_ask_for_is_a_typed_connection_error(stack: str) -> None:
    async with serve(respond(200, b"\x1b\x00", headers={"Content-Encoding": "br"})) as server:
        async with client(server, stack, max_retries=0) as partner:
            with pytest.raises(APIConnectionError, match="undecodable"):
                await partner.forms.master()


async def test_a_huge_error_answer_is_read_only_as_far_as_its_excerpt_needs(stack: str) -> None:
    async with serve(respond(500, "<html>" + "x" * (5 * 1024 * 1024))) as server:
        async with client(server, stack, max_retries=0, max_response_size=1024 * 1024) as partner:
            with pytest.raises(ServerError) as caught:
                await partner.forms.master()
    assert caught.value.body_excerpt.startswith("<html>xxx") and len(caught.value.body_excerpt) == 2048


# ----- 3. no connection reused after a malformed answer

FORGED = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"Id":"forged"}'


@pytest.mark.parametrize(
    "listing",
    [
        surplus([PRACTICE], FORGED),  # a whole forged answer queued behind the real one
        surplus([PRACTICE], b"\r\n\r\ngarbage"),
        counts_characters(json.dumps([dict(PRACTICE, PracticeName="Zoë Þórsdóttir")], ensure_ascii=False)),
    ],
    ids=["forged answer", "garbage", "Content-Length counts characters"],
)
async def test_bytes_beyond_an_answer_never_reach_the_next_request_and_no_create_is_duplicated(
    stack: str, listing: Any
) -> None:
    created = dict(PRACTICE, Id="p-real")
    routes = {("GET", PRACTICES): listing, ("POST", PRACTICES): respond(200, created)}
    async with serve(by_path(routes)) as server:
        async with client(server, stack, max_retries=0) as partner:
            try:
                await partner.practices.list(page=1)
            except (ResponseValidationError, APIConnectionError):
                pass  # cut short (counted in characters), or refused whole by a stricter parser: typed either way
            practice = await partner.practices.create(**NEW_PRACTICE)  # no external ID: never posted twice
    assert practice.id == "p-real"
    assert server.count("POST") == 1
    assert server.requests[-1].connection == 2  # the create went on a new connection


async def test_connections_are_still_reused_after_well_formed_answers(stack: str) -> None:
    async with serve(respond(200, [PRACTICE])) as server:
        async with client(server, stack) as partner:
            for _ in range(4):
                await partner.practices.list()
    assert server.connections == 1


async def test_an_answer_whose_head_arrives_in_pieces_is_read_on_a_reused_connection(stack: str) -> None:
    """A head split across reads (TLS records, a slow link, a loaded host) is one answer, not bytes after the last
    one: the guard against stray bytes once made every such answer on a reused connection a "Server
    disconnected", so a read was sent twice and a create reported as maybe sent."""
    created = dict(PRACTICE, Id="p-new")
    routes = {
        ("GET", PRACTICES): trickle(json.dumps([PRACTICE]).encode(), interval=0.002, in_head=True),
        ("POST", PRACTICES): trickle(json.dumps(created).encode(), interval=0.002, in_head=True),
    }
    async with serve(by_path(routes)) as server:
        async with client(server, stack, max_retries=0) as partner:
            for _ in range(2):
                assert [p.id for p in await partner.practices.list(page=1)] == ["p-1"]
            assert (await partner.practices.create(**NEW_PRACTICE)).id == "p-new"
    assert server.count("GET", PRACTICES) == 2 and server.count("POST") == 1 and server.connections == 1


# ----- 4. shutdown


async def _until_seen(server: RawServer, count: int = 1) -> None:
    for _ in range(500):
        if len(server.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never arrived")


async def test_closing_ends_calls_in_flight_with_client_closed_error_and_frees_their_slots(stack: str) -> None:
    async with serve(hang()) as server:
        # Two at once on one new key: a per-key cap, so no slow start (which sends one first, tests/test_pacing.py).
        partner = client(server, stack, max_concurrency=2, limits=RateLimits(concurrency=2))
        calls = [
            asyncio.ensure_future(partner.practices.create(**NEW_PRACTICE, external_practice_id=f"e-{i}"))
            for i in range(2)
        ]
        waiting = asyncio.ensure_future(partner.forms.master())  # queued for a slot behind the two
        await _until_seen(server, 2)
        await partner.aclose()
        results = await asyncio.gather(*calls, waiting, return_exceptions=True)
    assert [r.maybe_sent if isinstance(r, ClientClosedError) else r for r in results] == [True, True, False]
    assert partner._transport._semaphore is not None and partner._transport._semaphore._value == 2
    assert server.count("GET") == 0  # never retried: no look-up by external ID after the close


async def test_closing_ends_a_key_fetch_and_everyone_waiting_on_it(stack: str) -> None:
    async with serve(hang()) as server:
        partner = client(server, stack)
        v1 = partner.practice("p-1")
        calls = [asyncio.ensure_future(v1.practitioners.list()) for _ in range(3)]
        await _until_seen(server)
        await partner.aclose()
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ClientClosedError) for r in results), results
    assert partner._keys._inflight == {} and "p-1" not in partner._keys
    assert len(server.requests) == 1  # one shared fetch, and nothing after it


async def test_closing_ends_a_call_waiting_to_retry(stack: str) -> None:
    async with serve(respond(503, {"Message": "busy"})) as server:
        partner = client(server, stack, initial_delay=30.0, max_delay=30.0)
        call = asyncio.ensure_future(partner.forms.master())
        await _until_seen(server)
        await asyncio.sleep(0.05)  # now sleeping before its retry
        await partner.aclose()
        with pytest.raises(ClientClosedError):
            await call


async def test_a_call_after_close_is_a_client_closed_error_and_sends_nothing(stack: str) -> None:
    async with serve(respond(200, [])) as server:
        partner = client(server, stack)
        await partner.aclose()
        with pytest.raises(ClientClosedError) as caught:
            await partner.practices.list()
        with pytest.raises(ClientClosedError):
            await partner.practice("p-1").practitioners.list()
    assert not caught.value.maybe_sent and "closed" in str(caught.value) and server.requests == []


async def test_a_callers_own_cancellation_is_still_a_cancellation(stack: str) -> None:
    async with serve(hang()) as server, client(server, stack) as partner:
        call = asyncio.ensure_future(partner.forms.master())
        await _until_seen(server)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert not partner._transport._life.active


# ----- 5. odd text encodings


@pytest.mark.parametrize("charset", ["hex", "base64", "rot13", "idna", "punycode", "zlib", "uu", "no-such-thing"])
async def test_an_error_answer_in_any_charset_is_a_typed_error_with_an_excerpt(stack: str, charset: str) -> None:
    async with serve(with_charset(charset, b"Server \xff\xfe failure \x00!", status=500)) as server:
        async with client(server, stack, max_retries=0) as partner:
            with pytest.raises(ServerError) as caught:
                await partner.forms.master()
    assert caught.value.status_code == 500 and "failure" in caught.value.body_excerpt.replace("\x00", "")


@pytest.mark.parametrize("charset", ["punycode", "idna", "unicode_escape", "raw-unicode-escape"])
def test_a_codec_that_is_no_charset_leaves_the_excerpt_as_sent(charset: str) -> None:
    # Domain-name and escape codecs turn any bytes into other text (punycode reads "Server failure" as two CJK
    # characters); the excerpt is read as UTF-8 instead.
    body = b"Server failure: \\u0041"
    response = httpx.Response(500, headers={"Content-Type": f"text/plain; charset={charset}"}, content=body)
    assert body_excerpt(response) == body.decode()


async def test_json_with_a_byte_order_mark_is_accepted(stack: str) -> None:
    bom = b"\xef\xbb\xbf"
    routes = {
        ("GET", MASTER_FORMS): respond(200, bom + b'[{"Id": "f-1", "Name": "Intake"}]'),
        ("GET", PRACTICES): respond(400, bom + b'{"Message": "bad filter"}'),
    }
    async with serve(by_path(routes)) as server, client(server, stack) as partner:
        [form] = await partner.forms.master()
        with pytest.raises(APIStatusError) as caught:
            await partner.practices.list()
    assert form.id == "f-1" and caught.value.message == "bad filter"


# ----- 6. no key in error objects

PRACTICE_KEY = "practice-key-7f3a9c21e0b84d55"


def _texts(exc: BaseException) -> str:
    return " ".join([str(exc), repr(exc), repr(vars(exc)), *traceback.format_exception(exc)])


async def test_a_key_echoed_in_a_header_or_body_appears_in_no_error_text(stack: str) -> None:
    # Keys held elsewhere in the process that lie inside this request's key: other tests' clients left some
    # behind until the garbage collector ran, and the masking once depended on which it found first.
    inside = [Secret("partner-key"), Secret("hostile-partner"), Secret("key-51c0de")]
    assert all(key.reveal() in PARTNER_KEY for key in inside)
    echo = echo_key(body=lambda key: {"Message": f"key {key} refused", "Detail": f"X-Auth-Key: {key}"})
    async with serve(echo) as server, client(server, stack, max_retries=0) as partner:
        with pytest.raises(ServerError) as caught:
            await partner.forms.master()
    assert server.requests[0].headers["x-auth-key"] == PARTNER_KEY  # it went out, and came back
    error = caught.value
    assert error.request_id == "****" and error.message == "key **** refused", (error.request_id, error.message)
    assert PARTNER_KEY not in _texts(error)


async def test_a_practice_key_echoed_by_the_key_endpoint_is_masked_known_or_not(stack: str) -> None:
    """The fetch's 500 names a key we hold (cached for another practice) and one we do not know yet."""
    other = Secret("cached-key-of-p2-0b1c2d3e4f")  # held: e.g. cached for another practice
    body = {
        "Message": f"could not rotate {other.reveal()}",
        "ApiKey": PRACTICE_KEY,
        "Token": "tok-123456",
        "Password": "hunter2",
    }
    async with serve(respond(500, body, headers={"X-Request-Id": other.reveal()})) as server:
        async with client(server, stack, max_retries=0) as partner:
            with pytest.raises(ServerError) as caught:
                await partner.practice("p-1").practitioners.list()
    text = _texts(caught.value)
    for secret in (PRACTICE_KEY, other.reveal(), "tok-123456", "hunter2"):
        assert secret not in text, secret
    assert '"ApiKey": "****"' in caught.value.body_excerpt and caught.value.request_id == "****"


def _reachable(value: Any, depth: int = 0) -> Iterator[str]:
    """The text in a value, as an error tracker recording locals would see it (containers and models opened)."""
    if depth > 6:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes | bytearray):
        yield value.decode("latin-1")
    elif isinstance(value, Secret):
        yield value.reveal()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _reachable(k, depth + 1)
            yield from _reachable(v, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _reachable(item, depth + 1)
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from _reachable(getattr(value, field.name), depth + 1)
    else:
        yield repr(value)


def _frames(exc: BaseException | None) -> Iterator[FrameType]:
    """Every frame of the traceback of `exc` and of the exceptions chained to it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb: TracebackType | None = exc.__traceback__
        while tb is not None:
            yield tb.tb_frame
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__


@pytest.mark.parametrize(
    "answer",
    [{"ApiKey": f"{PRACTICE_KEY} with spaces"}, {"ApiKey": [PRACTICE_KEY]}, [{"ApiKey": PRACTICE_KEY}]],
    ids=["a key Secret refuses", "a key of the wrong type", "an array"],
)
async def test_no_frame_of_a_refused_key_answer_keeps_the_key(stack: str, answer: Any) -> None:
    async with serve(respond(200, answer)) as server:
        async with client(server, stack, max_retries=0) as partner:
            with pytest.raises(ResponseValidationError) as caught:
                await partner.practice("p-1").practitioners.list()
    assert caught.value.body_excerpt == "" and PRACTICE_KEY not in _texts(caught.value)
    for frame in _frames(caught.value):
        if "intakeq_partner" in frame.f_code.co_filename:
            for name, value in frame.f_locals.items():
                assert not any(PRACTICE_KEY in text for text in _reachable(value)), (frame.f_code.co_name, name)


async def test_every_error_here_is_typed(stack: str) -> None:
    """A sequence of every fault above on one connection after another: nothing but IntakeQError escapes."""
    replies = [
        surplus([PRACTICE], FORGED),
        with_charset("rot13", b"\xff", status=502),
        gzip_bomb(4 * 1024 * 1024),
        counts_characters('[{"Id": "é"}]'),
        respond(200, b"\xef\xbb\xbf[]"),
    ]
    async with serve(sequence(replies)) as server:
        async with client(server, stack, max_retries=0, max_response_size=1024 * 1024) as partner:
            outcomes: list[object] = []
            for _ in replies:
                try:
                    outcomes.append(await partner.practices.list(page=1))
                except IntakeQError as exc:
                    outcomes.append(type(exc))
    # A body cut short by a Content-Length in characters: the JSON is incomplete (httpx), or the bytes left over
    # are refused as a bad next answer (aiohttp, which parses what arrived with it); typed either way.
    assert outcomes[1:3] == [ServerError, ResponseTooLargeError] and outcomes[4] == []
    assert outcomes[3] in (ResponseValidationError, APIConnectionError)


def test_masking_finds_a_held_key_among_many_and_leaves_short_test_keys_alone() -> None:
    held = [Secret(f"held-key-{i:03d}-0123456789") for i in range(40)]  # past the few a plain scan handles
    short = Secret("a1")
    text = f"x {held[7].reveal()} y {short.reveal()} <Password>pw</Password> api_key='zz'"
    assert redact(text) == "x **** y a1 <Password>****</Password> api_key='****'"
    assert redact("sent a1", "a1") == "sent ****"  # the key a request went with, whatever its length
    inner = Secret("partner-key")  # held, and part of a longer key: the longer one is masked whole
    assert redact(f"echo hostile-{inner.reveal()}-51c0de", "hostile-partner-key-51c0de") == "echo ****"


async def test_a_view_from_with_options_bounds_its_own_calls_and_closes_with_its_client(stack: str) -> None:
    async with serve(hang()) as server:
        partner = client(server, stack)
        quick = partner.with_options(call_timeout=0.3)
        with pytest.raises(APITimeoutError, match="call_timeout"):
            await quick.forms.master()
        await quick.aclose()  # a view closes nothing
        call = asyncio.ensure_future(partner.with_options(max_retries=0).forms.master())
        await _until_seen(server, 2)
        assert not call.done()
        await partner.aclose()  # the client it came from ends its calls
        with pytest.raises(ClientClosedError):
            await call


def test_keys_that_overlap_in_a_text_are_masked_whole_whatever_the_order_they_are_tried_in() -> None:
    """Two keys sharing characters where they meet: masking one first must not leave part of the other."""
    left, right = Secret("AAAA-BBBB"), Secret("BBBB-CCCC-DD")  # right is longer, so it was masked first
    assert redact(f"x {left.reveal()}-CCCC-DD y") == "x **** y"
    assert redact(f"x AAAA-{right.reveal()} y", "AAAA-BBBB-CCCC") == "x **** y"  # and the sent key among them
    same = [Secret("EEEE-FFFF"), Secret("FFFF-GGGG")]  # equal lengths: the order was the set's, by hash seed
    assert redact(f"x {same[0].reveal()}-GGGG y {same[1].reveal()}") == "x **** y ****"
    again = Secret("aaXaa-aaXaa")  # a key overlapping itself
    assert redact(f"[{again.reveal()}Xaa-aaXaa]") == "[****]"
    many = [Secret(f"many-key-{i:03d}-0123456789") for i in range(40)]  # the window scan, past a few keys
    assert redact(f"x {left.reveal()}-CCCC-DD {many[3].reveal()} y") == "x **** **** y"


def test_a_key_held_twice_stays_masked_when_one_copy_is_dropped() -> None:
    first = Secret("refetched-key-0123456789")
    second = Secret("refetched-key-0123456789")  # the same key, fetched again
    del first
    gc.collect()
    assert redact(f"echo {second.reveal()}") == "echo ****"


class _AnswersOnce(httpx.AsyncBaseTransport):
    """A transport that answers its first request at once and never answers another."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls == 1:
            return httpx.Response(200, json=[])
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_the_attempt_deadline_holds_when_a_client_is_used_from_a_second_event_loop() -> None:
    transport = Transport(base_url="https://intakeq.test", transport=_AnswersOnce(), attempt_timeout=0.05)
    key = Secret(PARTNER_KEY)

    async def answered() -> None:
        await transport.request("GET", MASTER_FORMS, key=key)  # leaves the pool's sweep scheduled in this loop

    async def unanswered() -> None:
        with pytest.raises(APITimeoutError, match="attempt_timeout"):
            await asyncio.wait_for(transport.request("GET", MASTER_FORMS, key=key, idempotent=False), 5)

    asyncio.run(answered())
    asyncio.run(unanswered())  # that sweep died with the first loop: this loop needs its own
