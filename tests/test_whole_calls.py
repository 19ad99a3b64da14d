"""Facade calls made of several requests (a page walk, a read then a write) behave as one call: `call_timeout`
bounds the whole of it, and two updates of one object never interleave their read and write.

All against the in-process fake; slow pages come from its `latency` fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import FAST, PARTNER_KEY

from intakeq_partner import APITimeoutError, PartnerClient, PracticeClient, RateLimits
from intakeq_partner.testing import FakeIntakeQ, Faults

PAGE_LATENCY = 0.2  # each request well inside CALL_TIMEOUT, a whole walk or read-then-write well past it
CALL_TIMEOUT = 0.5


class IgnoresFilters(httpx.AsyncBaseTransport):
    """A server that answers the practice list unfiltered (only `page` kept): what `get` must walk through."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/partner/practice":
            page = request.url.params.get("page")
            request.url = request.url.copy_with(params={"page": page} if page else {})
        return await self.inner.handle_async_request(request)


# Two reads at once on one new key: a per-key cap, so no slow start (which sends one first and would leave the
# reads nothing to interleave, ReadsMeet's valve ending each wait after 5 s).
TWO_AT_ONCE = RateLimits(concurrency=2)


class ReadsMeet(httpx.AsyncBaseTransport):
    """Once armed, holds the first two reads (GETs of `path`) until both have arrived, so that two updates
    both read the old object before either writes; what follows passes at once. A valve ends the wait should
    a client serialise its reads (then there is nothing to interleave)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner, self.path = inner, path
        self.armed = False
        self.waiting = 0
        self.met = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hold = self.armed and not self.met.is_set()
        if hold and request.method == "GET" and request.url.path == self.path:
            self.waiting += 1
            if self.waiting >= 2:
                self.met.set()
            else:
                try:
                    await asyncio.wait_for(self.met.wait(), 5)
                except TimeoutError:
                    pass  # the client read one at a time: nothing to hold
        return await self.inner.handle_async_request(request)


@pytest.fixture
def paged_fake() -> FakeIntakeQ:
    return FakeIntakeQ(PARTNER_KEY, seed=7, page_size=2, list_paging="paged", update_semantics="replace")


@pytest.fixture
async def partner(paged_fake: FakeIntakeQ) -> AsyncIterator[PartnerClient]:
    transport = IgnoresFilters(paged_fake.transport())
    async with PartnerClient(PARTNER_KEY, base_url=paged_fake.base_url, transport=transport, **FAST) as client:
        for n in range(7):  # four pages of two
            await client.practices.create(
                practice_name=f"P{n}", first_name="A", last_name="B", email=f"p{n}@x.test", external_practice_id=f"e{n}"
            )
        yield client


async def test_call_timeout_bounds_a_whole_page_walk_and_each_page_of_iter(
    paged_fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    paged_fake.faults = Faults(latency=PAGE_LATENCY)
    hasty = partner.with_options(call_timeout=CALL_TIMEOUT)
    with pytest.raises(APITimeoutError, match="call_timeout"):
        await hasty.practices.list()
    # iter() hands each page over as it comes: the bound is per page fetch, so a long walk goes through.
    assert len([p async for p in hasty.practices.iter()]) == 7


async def test_call_timeout_bounds_a_lookup_that_walks_the_pages(
    paged_fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    paged_fake.faults = Faults(latency=PAGE_LATENCY)
    with pytest.raises(APITimeoutError, match="call_timeout"):
        await partner.with_options(call_timeout=CALL_TIMEOUT).practices.get("nobody")


async def test_call_timeout_bounds_an_update_its_read_included(paged_fake: FakeIntakeQ, partner: PartnerClient) -> None:
    practice = (await partner.practices.list(page=1))[0]
    doc = await partner.practice(practice.id).practitioners.create(first_name="Bo", last_name="Ek", email="b@x.test")
    paged_fake.faults = Faults(latency=PAGE_LATENCY * 1.5)  # a read and a write: 0.6 s, each request 0.3 s
    hasty = partner.with_options(call_timeout=CALL_TIMEOUT)
    with pytest.raises(APITimeoutError, match="call_timeout"):
        await hasty.practices.update(practice.id, city="Oslo")
    with pytest.raises(APITimeoutError, match="call_timeout"):
        await hasty.practice(practice.id).practitioners.update(doc.id, first_name="Al")


# --- two updates of one object ------------------------------------------------------------------------------


async def both(meet: ReadsMeet, *updates: Any) -> None:
    meet.armed = True
    await asyncio.gather(*updates)
    assert meet.met.is_set()  # both read the old object before either wrote


async def test_updates_through_an_own_key_client_and_its_view_keep_both_changes() -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=8, update_semantics="replace")
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), **FAST) as partner:
        practice = await partner.practices.create(practice_name="P", first_name="A", last_name="B", email="a@x.test")
        key = await partner.practices.api_key(practice.id)
    meet = ReadsMeet(fake.transport(), "/api/v1/practitioners")
    async with PracticeClient(key, base_url=fake.base_url, transport=meet, limits=TWO_AT_ONCE, **FAST) as own:
        doc = await own.practitioners.create(first_name="Bo", last_name="Ek", email="b@x.test")
        view = own.with_options(max_retries=1)
        await both(
            meet,
            own.practitioners.update(doc.id, first_name="Cy"),
            view.practitioners.update(doc.id, last_name="Du"),
        )
        after = await own.practitioners.get(doc.id)
    assert after is not None and (after.first_name, after.last_name) == ("Cy", "Du")


async def test_updates_by_id_and_by_external_id_keep_both_changes() -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=9, update_semantics="replace")
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport(), **FAST) as setup:
        practice = await setup.practices.create(
            practice_name="P", first_name="A", last_name="B", email="a@x.test", external_practice_id="ext-p"
        )
        await setup.practice(practice.id).practitioners.create(
            first_name="Bo", last_name="Ek", email="b@x.test", external_practitioner_id="ext-d"
        )
    for path in ("/api/partner/practice", "/api/v1/practitioners"):
        meet = ReadsMeet(fake.transport(), path)
        async with PartnerClient(
            PARTNER_KEY, base_url=fake.base_url, transport=meet, limits=TWO_AT_ONCE, **FAST
        ) as partner:
            if path == "/api/partner/practice":
                await both(
                    meet,
                    partner.practices.update(practice.id, city="Oslo"),
                    partner.practices.update("ext-p", state="Viken"),
                )
                got = await partner.practices.get(practice.id)
                assert got is not None and (got.city, got.state) == ("Oslo", "Viken")
            else:
                v1 = partner.practice(practice.id)
                doc = await v1.practitioners.get("ext-d")
                assert doc is not None
                await both(
                    meet,
                    v1.practitioners.update(doc.id, first_name="Cy"),
                    v1.practitioners.update("ext-d", last_name="Du"),
                )
                after = await v1.practitioners.get(doc.id)
                assert after is not None and (after.first_name, after.last_name) == ("Cy", "Du")
