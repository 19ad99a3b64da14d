"""Practice keys from a store the user opts into (`PartnerClient(key_store=...)`): fewer key fetches, trusted once."""

from __future__ import annotations

from typing import Any

import pytest
from test_provisioning import plan_data

from intakeq_partner import InvalidRequestError, KeyStore, PartnerClient
from intakeq_partner.provisioning import parse_plan, provision
from intakeq_partner.testing import FakeIntakeQ

KEY_ROUTE = ("GET", "/api/partner/practice/{practiceId}/key")


class Store:
    """A dict behind the KeyStore protocol, counting what it is asked."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.asked: list[str] = []

    def get(self, practice: str) -> str | None:
        self.asked.append(practice)
        return self.keys.get(practice)

    def put(self, practice: str, key: str) -> None:
        self.keys[practice] = key

    def discard(self, practice: str) -> None:
        self.keys.pop(practice, None)


class AsyncStore(Store):
    async def get(self, practice: str) -> str | None:  # type: ignore[override]
        return super().get(practice)

    async def put(self, practice: str, key: str) -> None:  # type: ignore[override]
        super().put(practice, key)

    async def discard(self, practice: str) -> None:  # type: ignore[override]
        super().discard(practice)


def client(fake: FakeIntakeQ, **options: Any) -> PartnerClient:
    return PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport(), **options)


@pytest.mark.parametrize("store_class", [Store, AsyncStore])
async def test_a_rerun_with_a_key_store_fetches_no_practice_key(store_class: type[Store]) -> None:
    fake = FakeIntakeQ(seed=9)
    plan = parse_plan(plan_data(10))
    store = store_class()
    assert isinstance(store, KeyStore)
    async with client(fake, key_store=store) as partner:
        assert (await provision(partner, plan)).ok
    assert len(store.keys) == 10  # the keys it fetched, put in the store
    assert fake.stats.calls[KEY_ROUTE] == 10
    fake.reset_stats()
    async with client(fake, key_store=store) as partner:  # the next run, a new process
        report = await provision(partner, plan)
    assert report.ok and report.changes == 0
    assert fake.stats.calls[KEY_ROUTE] == 0  # every key from the store: one partner-key call a practice saved
    per_practice = {route: n for route, n in fake.stats.calls.items() if n == 10}
    assert len(per_practice) == 3  # practitioners, assistants, forms; the rest is the run's: master forms, the list
    assert fake.stats.logged - 30 <= 3


async def test_a_stored_key_is_used_until_it_is_refused_once() -> None:
    fake = FakeIntakeQ(seed=9)
    fake.add_practice(ExternalPracticeId="ext-1")
    store = Store()
    async with client(fake, key_store=store) as partner:
        await partner.practice("ext-1").practitioners.list()
    old = store.keys["ext-1"]
    fresh = fake.rotate_practice_key("ext-1")  # revoked since the last run
    fake.reset_stats()
    async with client(fake, key_store=store) as partner:
        await partner.practice("ext-1").practitioners.list()  # the stored key is refused: fetched, retried
        await partner.practice("ext-1").practitioners.list()
    assert fake.stats.calls[KEY_ROUTE] == 1
    assert store.keys["ext-1"] == fresh != old  # the refused key replaced by the one IntakeQ gave
    assert fake.stats.statuses[401] == 1


async def test_keys_a_caller_supplies_are_used_without_fetching_and_never_written() -> None:
    fake = FakeIntakeQ(seed=9)
    practice = fake.add_practice(ExternalPracticeId="ext-1")
    supplied = {"ext-1": fake.practice_key(practice), "ext-2": "not-a-key-0123456789"}
    fake.add_practice(ExternalPracticeId="ext-2")
    async with client(fake, key_store=supplied.get) as partner:
        await partner.practice("ext-1").practitioners.list()
        assert fake.stats.calls[KEY_ROUTE] == 0
        await partner.practice("ext-2").practitioners.list()  # a wrong key: refused once, then fetched
        assert fake.stats.calls[KEY_ROUTE] == 1
        assert "not-a-key" not in repr(partner._keys._fetch)
    assert supplied["ext-2"] == "not-a-key-0123456789"  # a callable is only read


async def test_a_store_that_is_not_one_or_answers_no_key_is_refused() -> None:
    fake = FakeIntakeQ(seed=9)
    fake.add_practice(ExternalPracticeId="ext-1")
    with pytest.raises(InvalidRequestError, match="key_store"):
        client(fake, key_store=42)
    async with client(fake, key_store=lambda practice: 12345) as partner:
        with pytest.raises(InvalidRequestError, match="not a key"):
            await partner.practice("ext-1").practitioners.list()


class FailingStore(Store):
    """A vault in trouble: every get, put and discard raises (a message quoting the key, as careless ones do)."""

    def get(self, practice: str) -> str | None:
        raise RuntimeError(f"vault sealed while reading {practice}")

    def put(self, practice: str, key: str) -> None:
        raise RuntimeError(f"vault sealed: could not write {key}")

    def discard(self, practice: str) -> None:
        raise RuntimeError("vault sealed")


async def test_a_store_that_raises_costs_its_keys_not_the_job(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeIntakeQ(seed=9)
    plan = parse_plan(plan_data(3))
    with caplog.at_level("WARNING", logger="intakeq_partner"):
        async with client(fake, key_store=FailingStore()) as partner:
            report = await provision(partner, plan)
    assert report.ok and report.changes > 0  # every practice provisioned, each key fetched from IntakeQ
    assert fake.stats.calls[KEY_ROUTE] == 3
    warnings = [r.getMessage() for r in caplog.records if "key store" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one warning, naming the failure's type, never its text (it may hold a key)
    assert "RuntimeError" in warnings[0] and "sealed" not in caplog.text
    assert not any(fake.practice_key(p.id) in caplog.text for p in fake.practices)
