"""Practice keys: fetched once however many callers race, refreshed once on a 401, never shown."""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import math
import pickle
from typing import Any

import httpx
import pytest
from conftest import FAST, PARTNER_KEY, STACKS

from intakeq_partner import APITimeoutError, ClientClosedError, PartnerClient, Rate, RateLimitError, RateLimits
from intakeq_partner._errors import AuthenticationError, InvalidRequestError, NotFoundError
from intakeq_partner._keys import PracticeKeyCache, call_with_key
from intakeq_partner._redact import MASK, held, redact
from intakeq_partner._secret import Secret
from intakeq_partner.testing import FakeIntakeQ


async def seed(cache: PracticeKeyCache, practice_ref: str, key: Secret) -> None:
    """Put `key` in the cache the way keys get there in use: one fetch (which the test's fetcher does not count)."""
    fetch = cache._fetch

    async def once(ref: str) -> Secret:
        return key

    cache._fetch = once
    await cache.get(practice_ref)
    cache._fetch = fetch


def auth_error() -> AuthenticationError:
    return AuthenticationError(status_code=401, method="GET", path="/api/v1/practitioners")


class Fetcher:
    """A fake key endpoint: hands out key-1, key-2, ... and can be held open or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: Exception | None = None

    async def __call__(self, practice_ref: str) -> Secret:
        self.calls += 1
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return Secret(f"{practice_ref}-key-{self.calls}")


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


# --- Secret ----------------------------------------------------------------------------------------------------


def test_a_secret_shows_nothing_of_the_key(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("abcdef-123456")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").debug("key=%s %r %s", secret, secret, [secret])
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr({"k": secret}), caplog.text):
        assert "abcdef" not in text
        assert "56" not in text
    assert repr(secret) == "Secret('****')"
    assert secret.reveal() == "abcdef-123456"


def test_secrets_compare_and_hash_by_value() -> None:
    assert Secret("a1") == Secret("a1")
    assert Secret("a1") != Secret("a2")
    assert Secret("a1") != "a1"
    assert len({Secret("a1"), Secret("a1"), Secret("a2")}) == 2


def test_a_secret_cannot_be_pickled_or_changed_but_can_be_copied() -> None:
    secret = Secret("abcdef")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "other"
    assert copy.deepcopy({"k": secret})["k"] == secret


@pytest.mark.parametrize("value", ["", None, 123])
def test_an_empty_or_non_string_key_is_rejected(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        Secret(value)  # type: ignore[arg-type]


# --- PracticeKeyCache ------------------------------------------------------------------------------------------


async def test_a_hundred_concurrent_first_calls_make_one_fetch() -> None:
    fetch = Fetcher()
    fetch.release.clear()
    cache = PracticeKeyCache(fetch)
    tasks = [asyncio.create_task(cache.get("p1")) for _ in range(100)]
    await settle()
    fetch.release.set()
    keys = await asyncio.gather(*tasks)
    assert fetch.calls == 1
    assert set(keys) == {Secret("p1-key-1")}
    assert await cache.get("p1") == Secret("p1-key-1")
    assert fetch.calls == 1


async def test_each_practice_has_its_own_key() -> None:
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch)
    a, b = await asyncio.gather(cache.get("a"), cache.get("b"))
    assert (a, b) == (Secret("a-key-1"), Secret("b-key-2"))


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached() -> None:
    fetch = Fetcher()
    fetch.release.clear()
    fetch.fail_with = NotFoundError(status_code=404, method="GET", path="/api/partner/practice/p1/key")
    cache = PracticeKeyCache(fetch)
    tasks = [asyncio.create_task(cache.get("p1")) for _ in range(100)]
    await settle()
    fetch.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, NotFoundError) for r in results)
    assert fetch.calls == 1
    fetch.fail_with = None
    assert await cache.get("p1") == Secret("p1-key-2")  # the next call tries again
    assert fetch.calls == 2


async def test_one_waiter_giving_up_does_not_cancel_the_shared_fetch() -> None:
    fetch = Fetcher()
    fetch.release.clear()
    cache = PracticeKeyCache(fetch)
    quitter = asyncio.create_task(cache.get("p1"))
    stayer = asyncio.create_task(cache.get("p1"))
    await settle()
    quitter.cancel()
    await settle()
    fetch.release.set()
    assert await stayer == Secret("p1-key-1")
    assert fetch.calls == 1


async def test_a_shutdown_that_cancels_every_task_does_not_leave_the_practice_stuck() -> None:
    """A server shutting down cancels every task, the shared fetch too, perhaps before it ever ran."""
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch)
    waiter = asyncio.create_task(cache.get("p1"))
    await asyncio.sleep(0)  # the waiter has started the shared fetch, which has not run yet
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await settle()
    assert await cache.get("p1") == Secret(f"p1-key-{fetch.calls}")


async def test_invalidate_drops_only_the_stale_key() -> None:
    cache = PracticeKeyCache(Fetcher())
    await seed(cache, "p1", Secret("new"))
    cache.invalidate("p1", Secret("old"))  # someone already refreshed: keep the new key
    assert await cache.get("p1") == Secret("new")
    cache.invalidate("p1", Secret("new"))
    assert "p1" not in cache
    cache.invalidate("never-seen", Secret("x"))  # no error


async def test_the_cache_repr_shows_no_keys() -> None:
    cache = PracticeKeyCache(Fetcher())
    await seed(cache, "p1", Secret("very-secret"))
    assert "very-secret" not in repr(cache)


# --- call_with_key ---------------------------------------------------------------------------------------------


async def test_a_refused_cached_key_is_refreshed_and_the_call_retried_once() -> None:
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch)
    await seed(cache, "p1", Secret("revoked"))
    used: list[Secret] = []

    async def call(key: Secret) -> str:
        used.append(key)
        if key == Secret("revoked"):
            raise auth_error()
        return "ok"

    assert await call_with_key(cache, "p1", call) == "ok"
    assert used == [Secret("revoked"), Secret("p1-key-1")]
    assert fetch.calls == 1


async def test_a_second_refusal_is_raised_not_retried_again() -> None:
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch)
    await seed(cache, "p1", Secret("revoked"))
    used: list[Secret] = []

    async def call(key: Secret) -> str:
        used.append(key)
        raise auth_error()

    with pytest.raises(AuthenticationError):
        await call_with_key(cache, "p1", call)
    assert len(used) == 2
    assert fetch.calls == 1


async def test_a_freshly_fetched_key_that_is_refused_is_refetched_once_then_the_refusal_is_raised() -> None:
    """A key can be revoked between its fetch and its first use: one refresh, then a typed failure."""
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch)
    used: list[Secret] = []

    async def call(key: Secret) -> str:
        used.append(key)
        raise auth_error()

    with pytest.raises(AuthenticationError):
        await call_with_key(cache, "p1", call)
    assert used == [Secret("p1-key-1"), Secret("p1-key-2")]
    assert fetch.calls == 2


async def test_callers_who_shared_a_fetch_of_a_key_revoked_before_first_use_share_one_refresh() -> None:
    """200 callers join one fetch; its key is refused to each: one more fetch serves them all (they all failed)."""
    fetch = Fetcher()
    fetch.release.clear()
    cache = PracticeKeyCache(fetch)

    async def call(key: Secret) -> str:
        await asyncio.sleep(0.001 * (hash(asyncio.current_task()) % 5))  # refusals spread over the refresh
        if key == Secret("p1-key-1"):
            raise auth_error()
        return key.reveal()

    callers = [asyncio.ensure_future(call_with_key(cache, "p1", call)) for _ in range(200)]
    await settle()
    fetch.release.set()
    assert set(await asyncio.gather(*callers)) == {"p1-key-2"}
    assert fetch.calls == 2


async def test_refusals_of_one_key_that_straggle_in_after_its_refresh_fetch_nothing_more() -> None:
    """The refresh handed back the same key (the practice is refused, not its key): the others raise at once."""
    calls = 0

    async def same(practice_ref: str) -> Secret:
        nonlocal calls
        calls += 1
        return Secret("same-key-0123456789")

    cache = PracticeKeyCache(same)
    first_refused = asyncio.Event()

    async def call(key: Secret) -> str:
        if not first_refused.is_set():
            first_refused.set()
        else:
            await asyncio.sleep(0.01)  # after the first caller's refresh has finished
        raise auth_error()

    outcomes = await asyncio.gather(*(call_with_key(cache, "p1", call) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(outcome, AuthenticationError) for outcome in outcomes)
    assert calls == 2


async def test_the_least_recently_used_key_leaves_a_full_cache_and_is_fetched_again_when_needed() -> None:
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch, size=2)
    for ref in ("p1", "p2", "p1", "p3"):  # p1 used again: p2 is the least recently used when p3 comes
        await cache.get(ref)
    assert "p1" in cache and "p3" in cache and "p2" not in cache and len(cache) == 2
    assert fetch.calls == 3
    assert await cache.get("p2") == Secret("p2-key-4")  # fetched again, never guessed
    assert (fetch.calls, len(cache), cache.evicted) == (4, 2, 2)


async def test_an_evicted_key_is_forgotten_by_masking_too() -> None:
    async def fetch(practice_ref: str) -> Secret:
        return Secret(f"{practice_ref}-0123456789abcdef")

    gc.collect()  # keys left in garbage by earlier tests must not be collected during this one
    before = held()
    cache = PracticeKeyCache(fetch, size=100)
    for i in range(1000):
        await cache.get(f"p{i}")
    gc.collect()
    assert held() == before + 100  # what masking searches for is bounded with the cache
    assert redact("echo p3-0123456789abcdef") == "echo p3-0123456789abcdef"  # evicted: no longer held
    assert redact("echo p999-0123456789abcdef") == f"echo {MASK}"


async def test_a_key_older_than_its_ttl_is_fetched_again_by_one_fetch() -> None:
    now = [0.0]
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch, ttl=60, clock=lambda: now[0])
    assert await cache.get("p1") == Secret("p1-key-1")
    now[0] = 59.9
    assert await cache.get("p1") == Secret("p1-key-1")
    now[0] = 60.0
    keys = await asyncio.gather(*(cache.get("p1") for _ in range(50)))
    assert set(keys) == {Secret("p1-key-2")} and fetch.calls == 2


@pytest.mark.parametrize("size, ttl", [(0, None), (1.5, None), (True, None), (10, 0), (10, -1.0), (10, math.inf)])
def test_cache_bounds_that_cannot_be_meant_are_refused_before_anything_is_sent(size: Any, ttl: Any) -> None:
    with pytest.raises(InvalidRequestError, match=r"key_cache_size|key_ttl"):
        PartnerClient(PARTNER_KEY, base_url="http://127.0.0.1:9", key_cache_size=size, key_ttl=ttl)


@pytest.mark.parametrize("stack", STACKS)
async def test_through_the_client_a_key_revoked_before_first_use_is_refreshed_once_for_200_callers(
    fake: FakeIntakeQ, stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over loopback: the fake rotates the key right after handing it out, before anyone could use it."""
    fake.add_practice(ExternalPracticeId="ext-r")
    lookup = fake.state.practice
    rotated: list[str] = []

    def practice(ref: str) -> Any:
        found = lookup(ref)
        if not rotated:  # the first lookup is the key fetch's: revoke what it is handing out
            rotated.append(ref)
            asyncio.get_running_loop().call_soon(fake.rotate_practice_key, ref)
        return found

    monkeypatch.setattr(fake.state, "practice", practice)
    async with fake.serve() as base_url:
        options: dict[str, Any] = {**FAST, "http_stack": stack, "key_cache_size": 5}
        async with PartnerClient(PARTNER_KEY, base_url=base_url, **options) as p:
            clinic = p.practice("ext-r")
            answers = await asyncio.gather(*(clinic.practitioners.list() for _ in range(200)))
            assert len(answers) == 200 and rotated == ["ext-r"]
            for i in range(8):  # more practices than the cache holds: the first ones leave it
                fake.add_practice(ExternalPracticeId=f"ext-{i}")
                await p.practice(f"ext-{i}").practitioners.list()
            assert len(p._keys) == 5 and "ext-r" not in p._keys
            await clinic.practitioners.list()  # fetched again
    assert fake.stats.calls[KEY_ROUTE] == 2 + 8 + 1


async def test_no_retry_when_the_refresh_returns_the_same_key() -> None:
    async def same(practice_ref: str) -> Secret:
        return Secret("same")

    cache = PracticeKeyCache(same)
    await seed(cache, "p1", Secret("same"))
    calls = 0

    async def call(key: Secret) -> str:
        nonlocal calls
        calls += 1
        raise auth_error()

    with pytest.raises(AuthenticationError):
        await call_with_key(cache, "p1", call)
    assert calls == 1


async def test_other_errors_are_not_retried() -> None:
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch)
    await seed(cache, "p1", Secret("good"))
    calls = 0

    async def call(key: Secret) -> str:
        nonlocal calls
        calls += 1
        raise NotFoundError(status_code=404, method="GET", path="/x")

    with pytest.raises(NotFoundError):
        await call_with_key(cache, "p1", call)
    assert (calls, fetch.calls) == (1, 0)


async def test_many_concurrent_refusals_refresh_the_key_once() -> None:
    fetch = Fetcher()
    cache = PracticeKeyCache(fetch)
    await seed(cache, "p1", Secret("revoked"))
    refused = asyncio.Event()
    waiting = 0

    async def call(key: Secret) -> str:
        nonlocal waiting
        if key == Secret("revoked"):
            waiting += 1
            if waiting == 20:
                refused.set()
            await refused.wait()  # all twenty see the 401 together
            raise auth_error()
        return key.reveal()

    results = await asyncio.gather(*(call_with_key(cache, "p1", call) for _ in range(20)))
    assert set(results) == {"p1-key-1"}
    assert fetch.calls == 1


# --- the shared fetch through the client: whose deadline it runs under -------------------------------------------

KEY_ROUTE = ("GET", "/api/partner/practice/{practiceId}/key")
HASTY = 0.05  # a call_timeout far shorter than anything the held fetch can do before it is let go


class Held(httpx.AsyncBaseTransport):
    """The in-process fake, with the requests to paths ending in `suffix` held until `release` is set."""

    def __init__(self, fake: FakeIntakeQ, suffix: str) -> None:
        self.inner = fake.transport()
        self.suffix = suffix
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.held = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(self.suffix):
            self.held += 1
            self.arrived.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def partner_on(wire: Held, **options: Any) -> PartnerClient:
    return PartnerClient(PARTNER_KEY, base_url="http://127.0.0.1:9", transport=wire, **{**FAST, **options})


@pytest.mark.parametrize("holds", ["key endpoint", "partner budget"])
@pytest.mark.parametrize("hasty_one", ["a copy", "the cache's owner"])
async def test_a_short_call_timeout_ends_only_its_own_wait_for_a_shared_key_fetch(
    fake: FakeIntakeQ, holds: str, hasty_one: str
) -> None:
    """The first caller is in a hurry, the others are not: the fetch they share must serve the others.

    What holds the fetch back: the key endpoint answering late, or the partner key's budget, spent by a
    request still in flight (so the fetch must wait for it, then a whole window).
    """
    fake.add_practice(ExternalPracticeId="ext-k")
    limits = RateLimits(partner=Rate(1, 0.2))
    wire = Held(fake, "/key" if holds == "key endpoint" else "/masterForms")
    owner_timeout = HASTY if hasty_one == "the cache's owner" else None
    async with partner_on(wire, limits=limits, call_timeout=owner_timeout) as owner:
        hasty = owner if hasty_one == "the cache's owner" else owner.with_options(call_timeout=HASTY)
        patient = owner.with_options(call_timeout=None)
        if holds == "partner budget":
            spending = asyncio.ensure_future(patient.forms.master())
            await wire.arrived.wait()
        # All four start together, the hasty one first: it starts the fetch the others join.
        first = asyncio.ensure_future(hasty.practice("ext-k").practitioners.list())
        others = [asyncio.ensure_future(patient.practice("ext-k").practitioners.list()) for _ in range(3)]
        if holds == "key endpoint":
            await wire.arrived.wait()  # the shared fetch is under way
        with pytest.raises(APITimeoutError, match="call_timeout"):
            await first
        wire.release.set()
        lists = await asyncio.gather(*others)
        if holds == "partner budget":
            await spending
    expected = [p.id for p in fake.practitioners("ext-k")]
    assert [[p.id for p in found] for found in lists] == [expected] * 3
    assert fake.stats.calls[KEY_ROUTE] == 1  # one fetch, shared by all four


async def test_a_fetch_every_caller_gave_up_on_finishes_and_fills_the_cache(fake: FakeIntakeQ) -> None:
    fake.add_practice(ExternalPracticeId="ext-k")
    wire = Held(fake, "/key")
    async with partner_on(wire, call_timeout=HASTY) as partner:
        clinic = partner.practice("ext-k")
        with pytest.raises(APITimeoutError, match="call_timeout"):
            await clinic.practitioners.list()
        fetch = partner._keys._inflight["ext-k"]  # left to finish
        wire.release.set()
        await fetch
        assert "ext-k" in partner._keys
        await clinic.practitioners.list()  # quick now: the key is cached
    assert fake.stats.calls[KEY_ROUTE] == 1


async def test_closing_ends_a_fetch_every_caller_gave_up_on_and_frees_its_slots(fake: FakeIntakeQ) -> None:
    fake.add_practice(ExternalPracticeId="ext-k")
    wire = Held(fake, "/key")
    partner = partner_on(wire, call_timeout=HASTY, max_concurrency=1, limits=RateLimits(concurrency=1))
    with pytest.raises(APITimeoutError, match="call_timeout"):
        await partner.practice("ext-k").practitioners.list()
    fetch = partner._keys._inflight["ext-k"]
    await partner.aclose()  # never released: only the close can end it
    with pytest.raises(ClientClosedError):
        await fetch
    assert partner._keys._inflight == {} and "ext-k" not in partner._keys
    transport = partner._transport
    assert transport._semaphore is not None and transport._semaphore._value == 1
    assert all(budget.in_flight == 0 for budget in transport._pacing.budgets._keys.values())  # type: ignore[attr-defined]
    assert wire.held == 1 and fake.stats.calls[KEY_ROUTE] == 0  # one fetch, ended on its way


async def test_callers_who_all_must_end_before_the_partner_budget_allows_the_fetch_fail_at_once(
    fake: FakeIntakeQ,
) -> None:
    """Waiting would be pointless: the fetch fails fast with RateLimitError (its wait in retry_after), nothing
    sent; a caller without a deadline who comes afterwards starts a fetch of its own and waits for the budget."""
    fake.add_practice(ExternalPracticeId="ext-k")
    wire = Held(fake, "/masterForms")
    async with partner_on(wire, limits=RateLimits(partner=Rate(1, 0.2))) as partner:
        spending = asyncio.ensure_future(partner.forms.master())
        await wire.arrived.wait()  # the partner key's one request in the window is in flight
        hasty = partner.with_options(call_timeout=HASTY).practice("ext-k")
        results = await asyncio.gather(*(hasty.practitioners.list() for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, RateLimitError) and r.retry_after for r in results), results
        assert partner._keys._inflight == {}
        late = asyncio.ensure_future(partner.practice("ext-k").practitioners.list())
        await settle()
        wire.release.set()
        await spending
        assert [p.id for p in await late] == [p.id for p in fake.practitioners("ext-k")]
    assert fake.stats.calls[KEY_ROUTE] == 1  # only the late caller's fetch was sent
