"""`with_options(...)`: other send options per call, the same pool, limits and key cache, the original unchanged."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from conftest import PARTNER_KEY, practice_fields

from intakeq_partner import APITimeoutError, InvalidRequestError, PartnerClient, PracticeClient, ServerError
from intakeq_partner.testing import FakeIntakeQ, Faults

KEY_ROUTE = ("GET", "/api/partner/practice/{practiceId}/key")


class Watching(httpx.AsyncBaseTransport):
    """Passes requests to the fake and notes what httpx sent with each (its timeouts) and how many overlapped."""

    def __init__(self, fake: FakeIntakeQ) -> None:
        self.inner = fake.transport()
        self.read_timeouts: list[float | None] = []
        self.in_flight = self.most_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.read_timeouts.append(request.extensions["timeout"]["read"])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)  # let others start, if the limits allow
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


def client(fake: FakeIntakeQ, wire: Watching, **options: object) -> PartnerClient:
    return PartnerClient(
        PARTNER_KEY,
        base_url=fake.base_url,
        transport=wire,
        initial_delay=0.0,
        max_delay=0.0,
        **options,  # type: ignore[arg-type]
    )


async def test_retries_and_timeouts_reach_the_wire_and_the_original_keeps_its_own(fake: FakeIntakeQ) -> None:
    wire = Watching(fake)
    async with client(fake, wire, max_retries=0, timeout=30.0) as partner:
        patient = partner.with_options(max_retries=3, timeout=7.5)
        fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))
        with pytest.raises(ServerError):
            await patient.forms.master()
        assert len(fake.requests) == 4 and wire.read_timeouts == [7.5] * 4
        with pytest.raises(ServerError):
            await partner.forms.master()
        assert len(fake.requests) == 5 and wire.read_timeouts[-1] == 30.0
        assert partner.options["max_retries"] == 0 and patient.options["max_retries"] == 3

        fake.faults = Faults(p_hang=1.0, hang_seconds=5.0)
        with pytest.raises(APITimeoutError):
            await partner.with_options(timeout=0.05).forms.master()  # the fake hangs; the short timeout ends it


async def test_the_copy_shares_the_practice_key_cache_and_the_concurrency_limit(fake: FakeIntakeQ) -> None:
    wire = Watching(fake)
    async with client(fake, wire, max_concurrency=1) as partner:
        practice = await partner.practices.create(**practice_fields("opt"), external_practice_id="ext-opt")
        await partner.practice("ext-opt").practitioners.list()
        quick = partner.with_options(timeout=5.0)
        await quick.practice("ext-opt").practitioners.list()
        assert fake.stats.calls[KEY_ROUTE] == 1  # the copy used the key the original fetched

        wire.most_in_flight = 0
        calls = [partner.forms.list(practice.id) for _ in range(4)] + [quick.forms.list(practice.id) for _ in range(4)]
        await asyncio.gather(*calls)
        assert wire.most_in_flight == 1  # one limit for both

        await quick.aclose()  # closes nothing: the pool is the original's
        assert await partner.forms.master()


async def test_practice_clients_have_it_too(fake: FakeIntakeQ) -> None:
    wire = Watching(fake)
    async with client(fake, wire, max_retries=0) as partner:
        await partner.practices.create(**practice_fields("pc"), external_practice_id="ext-pc")
        own = PracticeClient(
            fake.practice_key("ext-pc"), base_url=fake.base_url, transport=wire, max_retries=0, initial_delay=0.0
        )
        for practice in (partner.practice("ext-pc"), own):
            await practice.practitioners.list()  # the practice key is fetched and cached before the faults
            fake.faults = Faults(p5xx=1.0, statuses_5xx=(502,))
            fake.reset_stats()
            with pytest.raises(ServerError):
                await practice.with_options(max_retries=2).practitioners.list()
            with pytest.raises(ServerError):
                await practice.practitioners.list()
            assert [r.status for r in fake.requests] == [502, 502, 502, 502]  # 3 by the copy, 1 by the original
            fake.faults = Faults()
            assert practice.with_options(timeout=1.0).practice == practice.practice
        await own.aclose()


def test_options_that_belong_to_the_shared_pool_are_refused(fake: FakeIntakeQ) -> None:
    partner = client(fake, Watching(fake))
    for bad in ({"rate_limit": 5.0}, {"max_concurrency": 2}, {"transport": None}, {"http_client": None}):
        with pytest.raises(InvalidRequestError, match="make a new client"):
            partner.with_options(**bad)
    for bad in ({"max_retries": -1}, {"timeout": 0}, {"initial_delay": -1.0}):
        with pytest.raises(InvalidRequestError):
            partner.with_options(**bad)
