"""Facade calls made of several requests (a page walk, a read then a write) behave as one call: `call_timeout`
bounds the whole of it.

All against the in-process fake; slow pages come from its `latency` fault.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import FAST, PARTNER_KEY

from intakeq_partner import APITimeoutError, PartnerClient
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
        await hasty.practices.update(id=practice.id, city="Oslo")
    with pytest.raises(APITimeoutError, match="call_timeout"):
        await hasty.practice(practice.id).practitioners.update(id=doc.id, first_name="Al")
