"""Budgets per key and pacing after a 429, in one process (a fake clock; respx for the server)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from rawservers import respond, serve

from intakeq_partner import PartnerClient, Rate, RateLimits
from intakeq_partner._budgets import LocalBudgets, budget_id
from intakeq_partner._constants import MAX_PAUSE_AFTER_429
from intakeq_partner._errors import InvalidRequestError, RateLimitError
from intakeq_partner._secret import Secret
from intakeq_partner._transport import Transport
from intakeq_partner.testing import FakeIntakeQ, Faults

BASE = "https://api.test"
PARTNER_PATH = "/api/partner/masterForms"
PRACTICE_PATH = "/api/v1/practitioners"
PARTNER = Secret("partner-key-0123456789")
CLINIC_A = Secret("practice-key-aaaaaaaaaa")
CLINIC_B = Secret("practice-key-bbbbbbbbbb")
KEY_TEXT = "partner-key-absurd-0123"


class Clock:
    """Fake time: `sleep` moves it forward and records the wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sent(clock: Clock) -> Iterator[list[tuple[float, str, str]]]:
    """(time, path, key) of every request the server saw, answered 200."""
    log: list[tuple[float, str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        log.append((clock.now, request.url.path, request.headers["X-Auth-Key"]))
        return httpx.Response(200, json=[])

    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.get(PARTNER_PATH).mock(side_effect=answer)
        mock.get(PRACTICE_PATH).mock(side_effect=answer)
        yield log


def transport(clock: Clock, limits: RateLimits, **kwargs: Any) -> Transport:
    options: dict[str, Any] = {"http_stack": "httpx", "random": lambda: 1.0, **kwargs}  # respx mocks httpx
    return Transport(base_url=BASE, limits=limits, clock=clock, sleep=clock.sleep, **options)


# --- configuration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rates"),
    [
        ("10/minute, 500/day", (Rate(10, 60), Rate(500, 86400))),
        ("50/s", (Rate(50, 1),)),
        ("50", (Rate(50, 1),)),
        ("5/10s", (Rate(5, 10),)),
        ("3 / 2 hours", (Rate(3, 7200),)),
    ],
)
def test_rates_read_as_people_write_them(text: str, rates: tuple[Rate, ...]) -> None:
    assert Rate.parse(text) == rates
    assert RateLimits(partner=text).partner == rates


@pytest.mark.parametrize("text", ["", "ten/minute", "10/fortnight", "0/s", "10/0s", "-1/s", "10/minute,"])
def test_unreadable_or_empty_rates_fail_before_anything_is_sent(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        Rate.parse(text)


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency": 0},
        {"concurrency": True},
        {"pause_after_429": -1},
        {"max_wait": float("inf")},
        {"redis_url": "http://localhost:6379"},
        {"on_redis_error": "ignore"},
        {"fallback_share": 0},
        {"practice": [10]},
    ],
)
def test_bad_limits_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        RateLimits(**options)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa55word@127.0.0.1:abc/0",  # a port that is not a number
        "redis://:pa55word@127.0.0.1:99999/0",  # out of range
        "redis://:pa55word@127.0.0.1:6379/0?socket_timeout=soon",  # an option redis-py cannot read
        "redis://:pa55word@[::1/0",  # an unclosed IPv6 bracket
    ],
)
def test_an_unreadable_redis_url_fails_at_construction_without_its_password(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        RateLimits(redis_url=url)
    assert "redis_url" in str(info.value) and "pa55word" not in str(info.value)
    assert info.value.__cause__ is None or "pa55word" not in str(info.value.__cause__)


def test_a_budget_is_named_by_a_hash_of_its_key_never_the_key() -> None:
    ident = budget_id(CLINIC_A)
    assert CLINIC_A.reveal() not in ident and ident == budget_id(Secret(CLINIC_A.reveal()))
    assert ident != budget_id(CLINIC_B)
    assert "practice-key" not in repr(RateLimits(practice="1/s"))
    shown = repr(RateLimits(redis_url="redis://user:pa55word@10.0.0.5:6379/2"))
    assert "pa55word" not in shown and "redis://10.0.0.5:6379/2" in shown


# --- budgets per key -------------------------------------------------------------------------------------------


async def test_each_practice_key_spends_its_own_budget_apart_from_the_partner_key(
    clock: Clock, sent: list[tuple[float, str, str]]
) -> None:
    limits = RateLimits(partner="2/s", practice="2/s")
    async with transport(clock, limits) as t:
        calls = [(PARTNER_PATH, PARTNER), (PRACTICE_PATH, CLINIC_A), (PRACTICE_PATH, CLINIC_B)] * 3
        await asyncio.gather(*(t.request("GET", path, key=key) for path, key in calls))
    starts: dict[str, list[float]] = {}
    for when, _, key in sent:
        starts.setdefault(key, []).append(when)
    # Two a second per key, each key on its own: the third call of every key waits one second, none waits two.
    assert starts == {k.reveal(): [0.0, 0.0, 1.0] for k in (PARTNER, CLINIC_A, CLINIC_B)}


async def test_every_window_of_a_key_is_respected(clock: Clock, sent: list[tuple[float, str, str]]) -> None:
    async with transport(clock, RateLimits(practice="2/s, 3/10s")) as t:
        for _ in range(4):
            await t.request("GET", PRACTICE_PATH, key=CLINIC_A)
    assert [when for when, _, _ in sent] == [0.0, 0.0, 1.0, 10.0]


async def test_per_key_concurrency_caps_one_key_and_not_the_others() -> None:
    release = asyncio.Event()
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}

    async def slow(request: httpx.Request) -> httpx.Response:
        key = request.headers["X-Auth-Key"]
        in_flight[key] = in_flight.get(key, 0) + 1
        most[key] = max(most.get(key, 0), in_flight[key])
        await release.wait()
        in_flight[key] -= 1
        return httpx.Response(200, json=[])

    with respx.mock(base_url=BASE) as mock:
        mock.get(PRACTICE_PATH).mock(side_effect=slow)
        async with Transport(base_url=BASE, limits=RateLimits(concurrency=2), http_stack="httpx") as t:
            calls = [t.request("GET", PRACTICE_PATH, key=k) for k in (CLINIC_A, CLINIC_B) for _ in range(5)]
            tasks = [asyncio.ensure_future(c) for c in calls]
            for _ in range(50):
                await asyncio.sleep(0)
            assert in_flight == {CLINIC_A.reveal(): 2, CLINIC_B.reveal(): 2}
            release.set()
            await asyncio.gather(*tasks)
    assert most == {CLINIC_A.reveal(): 2, CLINIC_B.reveal(): 2}


async def test_a_call_that_would_wait_past_max_wait_fails_at_once_carrying_the_wait(
    clock: Clock, sent: list[tuple[float, str, str]]
) -> None:
    async with transport(clock, RateLimits(practice="1/minute", max_wait=10)) as t:
        await t.request("GET", PRACTICE_PATH, key=CLINIC_A)
        with pytest.raises(RateLimitError) as info:
            await t.request("GET", PRACTICE_PATH, key=CLINIC_A)
        await t.request("GET", PRACTICE_PATH, key=CLINIC_B)  # another key is not held up
    assert info.value.retry_after == pytest.approx(60.0)
    assert "not sent" in str(info.value)
    assert len(sent) == 2 and clock.sleeps == []


async def test_a_wait_past_the_call_timeout_fails_at_once_with_the_wait_not_a_timeout_later(
    clock: Clock, sent: list[tuple[float, str, str]]
) -> None:
    async with transport(clock, RateLimits(practice="1/minute"), call_timeout=5.0) as t:
        await t.request("GET", PRACTICE_PATH, key=CLINIC_A)
        with pytest.raises(RateLimitError) as info:  # max_wait (120 s) would allow it; call_timeout does not
            await t.request("GET", PRACTICE_PATH, key=CLINIC_A)
    assert info.value.retry_after == pytest.approx(60.0)
    assert len(sent) == 1 and clock.sleeps == []


async def test_a_day_budget_once_spent_fails_fast_rather_than_waiting_a_day(
    clock: Clock, sent: list[tuple[float, str, str]]
) -> None:
    async with transport(clock, RateLimits(partner="10/minute, 3/day")) as t:
        for _ in range(3):
            await t.request("GET", PARTNER_PATH, key=PARTNER)
        with pytest.raises(RateLimitError) as info:
            await t.request("GET", PARTNER_PATH, key=PARTNER)
    assert info.value.retry_after == pytest.approx(86400.0)
    assert len(sent) == 3


async def test_idle_keys_are_forgotten_so_many_practices_do_not_pile_up_state(clock: Clock) -> None:
    budgets = LocalBudgets(RateLimits(practice="1/s"), clock=clock, sleep=clock.sleep)
    budgets._SWEEP_EVERY = 10
    for i in range(25):
        async with budgets.slot(Secret(f"practice-{i:04d}"), "practice", None):
            pass
        clock.now += 2  # each key is idle again before the next one starts
    assert len(budgets) < 10


# --- pacing after a 429 ----------------------------------------------------------------------------------------


async def test_a_429_pauses_the_key_for_every_caller_and_only_that_key(clock: Clock) -> None:
    seen: list[tuple[float, str]] = []
    answers = iter([httpx.Response(429, headers={"Retry-After": "5"})])

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((clock.now, request.headers["X-Auth-Key"]))
        return next(answers, httpx.Response(200, json=[]))

    with respx.mock(base_url=BASE) as mock:
        mock.get(PRACTICE_PATH).mock(side_effect=answer)
        async with transport(clock, RateLimits(), max_retries=0) as t:
            with pytest.raises(RateLimitError):
                await t.request("GET", PRACTICE_PATH, key=CLINIC_A)  # one caller meets the 429
            await t.request("GET", PRACTICE_PATH, key=CLINIC_B)  # another practice: not paused
            await t.request("GET", PRACTICE_PATH, key=CLINIC_A)  # another caller of A: waits out the pause
            await t.request("GET", PRACTICE_PATH, key=CLINIC_A)  # after the pause
    a, b = CLINIC_A.reveal(), CLINIC_B.reveal()
    assert seen[:3] == [(0.0, a), (0.0, b), (5.0, a)]
    # A lone 429 at first contact, nothing else on its way, is a pause, not a limit learned (tests/test_pacing.py).
    assert seen[3] == (5.0, a)
    assert clock.sleeps[0] == 5.0


async def test_a_429_without_retry_after_pauses_for_the_configured_default(clock: Clock) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get(PARTNER_PATH).mock(side_effect=[httpx.Response(429), httpx.Response(200, json=[])])
        async with transport(clock, RateLimits(pause_after_429=12.5)) as t:
            await t.request("GET", PARTNER_PATH, key=PARTNER)
    assert route.call_count == 2 and clock.sleeps == [12.5]


async def test_a_pause_longer_than_max_wait_ends_the_call_with_the_servers_429_and_the_wait(clock: Clock) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get(PARTNER_PATH).mock(return_value=httpx.Response(429, headers={"X-Request-Id": "r-1"}))
        async with transport(clock, RateLimits(max_wait=30)) as t:
            with pytest.raises(RateLimitError) as info:
                await t.request("GET", PARTNER_PATH, key=PARTNER)
            # Later calls on the paused key fail at once too, without sending anything.
            with pytest.raises(RateLimitError) as later:
                await t.request("GET", PARTNER_PATH, key=PARTNER)
    assert route.call_count == 1 and clock.sleeps == []
    assert info.value.request_id == "r-1" and info.value.retry_after == 60.0
    assert later.value.retry_after == pytest.approx(60.0) and "paused" in str(later.value)


async def test_pacing_logs_the_pause_and_never_the_key(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="intakeq_partner")
    with respx.mock(base_url=BASE) as mock:
        mock.get(PARTNER_PATH).mock(side_effect=[httpx.Response(429), httpx.Response(200, json=[])])
        async with transport(clock, RateLimits(partner="5/s")) as t:
            await t.request("GET", PARTNER_PATH, key=PARTNER)
    assert "retry in 60.00 s" in caplog.text
    assert PARTNER.reveal() not in caplog.text and budget_id(PARTNER) not in caplog.text


# --- against the fake, over loopback ---------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [RateLimits(partner="10/minute"), None], ids=["budget", "no-budget"])
async def test_a_minute_budget_meets_a_server_counting_a_minute_exactly(
    clock: Clock, limits: RateLimits | None
) -> None:
    """The fake allows 10 a minute per key; 25 calls in a row, time passing only when the client waits."""
    fake = FakeIntakeQ(seed=2, faults=Faults(rate_limit=10, rate_window=60), monotonic=clock)
    options: dict[str, Any] = {"max_retries": 0, "transport": fake.transport(), "limits": limits}
    key = Secret(fake.partner_key)
    done = 0
    async with Transport(base_url=fake.base_url, clock=clock, sleep=clock.sleep, **options) as t:
        for _ in range(25):
            with contextlib.suppress(RateLimitError):
                await t.request("GET", PARTNER_PATH, key=key)
                done += 1
    refused = fake.stats.statuses[429]
    if limits is None:
        assert refused > 0  # the server does refuse what a budget would have held back
    else:
        assert refused == 0 and done == 25
        assert clock.now == 120.0  # two waits of exactly a minute, none longer


async def test_per_key_budgets_keep_a_rate_limited_fake_from_ever_refusing() -> None:
    """The fake allows 3 requests a second per key; partner and practice calls race on separate budgets."""
    fake = FakeIntakeQ(seed=2)
    async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport()) as setup:
        await setup.practices.create(
            practice_name="P", first_name="A", last_name="B", email="a@b.example", external_practice_id="p-1"
        )
    limits = RateLimits(partner="3/s", practice="3/s")
    async with fake.serve(port=0) as base_url:
        async with PartnerClient(fake.partner_key, base_url=base_url, limits=limits) as partner:
            clinic = partner.practice("p-1")
            await clinic.practitioners.list()  # the key fetch, before the limit is on
            fake.reset_stats()
            fake.faults = Faults(rate_limit=3)
            calls = [partner.forms.master() for _ in range(5)] + [clinic.practitioners.list() for _ in range(5)]
            await asyncio.gather(*calls)
    assert fake.stats.statuses[429] == 0
    assert fake.stats.statuses[200] == 10


@pytest.mark.parametrize("header", ["inf", "1e400", "nan", "1e9", "99999999999999999999999", "86400"])
async def test_an_absurd_retry_after_pauses_the_key_for_a_bounded_time_not_for_the_life_of_the_process(
    header: str,
) -> None:
    async with serve(respond(429, {"error": "slow down"}, headers={"Retry-After": header})) as server:
        limits = RateLimits(max_wait=0.5)
        async with PartnerClient(KEY_TEXT, base_url=server.base_url, limits=limits, max_retries=0) as p:
            with pytest.raises(RateLimitError) as first:
                await p.forms.master()
            with pytest.raises(RateLimitError) as later:  # paused: fails at once, nothing sent
                await p.forms.master()
    assert server.count("GET") == 1
    # The server's wish when it is readable (a day is); else the pause the client made (the default).
    assert first.value.retry_after == (86400 if header == "86400" else limits.pause_after_429)
    assert later.value.retry_after is not None and 0 < later.value.retry_after <= MAX_PAUSE_AFTER_429
