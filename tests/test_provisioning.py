"""The provisioning job and plan files, driven through the fake IntakeQ and judged by what the fake holds and saw."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import READINGS, play

from intakeq_partner import PartnerClient, RateLimits
from intakeq_partner.provisioning import (
    ItemKind,
    ItemResult,
    ItemStatus,
    Plan,
    PlanError,
    load_plan,
    parse_plan,
    provision,
)
from intakeq_partner.provisioning import job as job_module
from intakeq_partner.testing import FakeIntakeQ, Faults

WRITES = ("POST", "PUT", "DELETE")


def plan_data(n: int, *, first: int = 0) -> dict[str, Any]:
    """n practices, each: main user listed as a practitioner, one more practitioner, an assistant, two forms."""
    practices = []
    for i in range(first, first + n):
        ext = f"ext-{i:04d}"
        practices.append(
            {
                "external_practice_id": ext,
                "practice_name": f"Practice {i}",
                "first_name": "Ann",
                "last_name": f"Lee{i}",
                "email": f"ann{i}@example.com",
                "city": "Oslo",
                "external_practitioner_id": f"{ext}-main",
                "practitioners": [
                    {
                        "external_practitioner_id": f"{ext}-main",
                        "first_name": "Ann",
                        "last_name": f"Lee{i}",
                        "email": f"ann{i}@example.com",
                    },
                    {
                        "external_practitioner_id": f"{ext}-dr",
                        "first_name": "Bo",
                        "last_name": "Kim",
                        "email": f"bo{i}@example.com",
                        "role_name": "Practitioner",
                    },
                ],
                "assistants": [
                    {
                        "external_assistant_id": f"{ext}-desk",
                        "name": "Cy Desk",
                        "email": f"desk{i}@example.com",
                        "practitioner_ids": [f"{ext}-dr"],
                    }
                ],
            }
        )
    return {
        "defaults": {"forms": ["Intake Form", "Progress Note"], "copy_attached_consent_forms": True},
        "practices": practices,
    }


def writes(fake: FakeIntakeQ) -> int:
    return sum(n for (method, _), n in fake.stats.calls.items() if method in WRITES)


def client(fake: FakeIntakeQ, **options: Any) -> PartnerClient:
    options.setdefault("initial_delay", 0.001)
    options.setdefault("max_delay", 0.01)
    return PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport(), **options)


@pytest.fixture(params=list(READINGS))
def fake(request: pytest.FixtureRequest) -> FakeIntakeQ:
    """The fake under each reading of the API document (see conftest.READINGS)."""
    return play(FakeIntakeQ(seed=11), request.param)


@pytest.fixture
async def partner(fake: FakeIntakeQ) -> AsyncIterator[PartnerClient]:
    async with client(fake) as p:
        yield p


def assert_converged(fake: FakeIntakeQ, plan: Plan) -> None:
    """The fake holds exactly one of everything the plan names, with the plan's values."""
    by_ext = {p.external_id: p for p in fake.practices}
    assert len(by_ext) == len(fake.practices), "duplicate practice"
    for spec in plan.practices:
        practice = by_ext[spec.external_id]
        assert (practice.practice_name, practice.first_name, practice.email) == (
            spec.practice_name,
            spec.first_name,
            spec.email,
        )
        if spec.city is not None:
            assert practice.city == spec.city
        people = fake.practitioners(practice)
        exts = [p.external_id for p in people]
        assert len(exts) == len(set(exts)), f"duplicate practitioner in {spec.external_id}"
        ids = {p.external_id: p.id for p in people}
        for want in spec.practitioners:
            got = fake.practitioner(practice, want.external_id)
            assert (got.first_name, got.last_name, got.email) == (want.first_name, want.last_name, want.email)
            if want.role_name:
                assert got.role_name == want.role_name
        assistants = fake.assistants(practice)
        assert len({a.external_id for a in assistants}) == len(assistants), "duplicate assistant"
        for want_a in spec.assistants:
            (got_a,) = [a for a in assistants if a.external_id == want_a.external_id]
            assert (got_a.name, got_a.email) == (want_a.name, want_a.email)
            if want_a.practitioners is not None:
                assert set(got_a.practitioner_ids) == {ids[r] for r in want_a.practitioners}
        forms = [(f.name, f.type) for f in fake.forms(practice) if f.type != "ConsentForm"]
        assert len(forms) == len(set(forms)), f"duplicate form in {spec.external_id}"
        assert {name for name, _ in forms} == {f.name for f in spec.forms}


# ----- converging


async def test_a_plan_converges_and_a_second_run_writes_nothing(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    plan = parse_plan(plan_data(12))
    seen: list[ItemResult] = []
    first = await provision(partner, plan, concurrency=4, on_progress=seen.append)
    assert first.ok and len(first.items) == plan.item_count == len(seen)
    assert_converged(fake, plan)
    # The main user comes with the practice, so it is found, not made.
    mains = [i for i in first.items if i.kind is ItemKind.PRACTITIONER and i.key.endswith("-main")]
    assert {i.status for i in mains} == {ItemStatus.UNCHANGED}
    # One walk of the list, not one lookup per practice: an empty first page here...
    assert fake.stats.calls[("GET", "/api/partner/practice")] == 1

    fake.reset_stats()
    second = await provision(partner, plan, concurrency=4)
    assert writes(fake) == 0
    assert second.ok and second.counts[ItemStatus.UNCHANGED] == plan.item_count
    assert fake.stats.calls[("GET", "/api/partner/practice")] == 2


async def test_changed_fields_make_exactly_the_expected_updates(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    data = plan_data(3)
    await provision(partner, parse_plan(data))
    p0, p1 = data["practices"][0], data["practices"][1]
    p0["city"] = "Bergen"
    p0["practitioners"][1]["last_name"] = "Kimura"
    p1["assistants"][0]["practitioner_ids"] = ["ext-0001-dr", "ext-0001-main"]
    p1["forms"] = ["Intake Form", "Progress Note", "Adult History"]
    plan = parse_plan(data)
    fake.reset_stats()
    report = await provision(partner, plan)

    changed = {(i.kind, i.key): i.changed for i in report.items if i.status is ItemStatus.UPDATED}
    assert changed == {
        (ItemKind.PRACTICE, "ext-0000"): ("city",),
        (ItemKind.PRACTITIONER, "ext-0000-dr"): ("last_name",),
        (ItemKind.ASSISTANT, "ext-0001-desk"): ("practitioners",),
    }
    created = [(i.kind, i.practice, i.key) for i in report.items if i.status is ItemStatus.CREATED]
    assert created == [(ItemKind.FORM, "ext-0001", "Adult History")]
    assert fake.stats.calls[("PUT", "/api/partner/practice")] == 1
    assert fake.stats.calls[("PUT", "/api/v1/practitioners")] == 1
    assert fake.stats.calls[("PUT", "/api/v1/assistants")] == 1
    assert fake.stats.calls[("POST", "/api/partner/practice/copyForm")] == 1
    assert writes(fake) == 4
    assert_converged(fake, plan)


async def test_a_practice_made_outside_the_plan_is_adopted_not_duplicated(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    fake.add_practice(
        ExternalPracticeId="ext-0000",
        PracticeName="Old name",
        FirstName="Ann",
        LastName="Lee0",
        Email="ANN0@example.com",
    )
    fake.add_practice_form("ext-0000", "Intake Form", "Questionnaire")
    plan = parse_plan(plan_data(1))
    report = await provision(partner, plan)
    assert report.ok
    statuses = {(i.kind, i.key): i.status for i in report.items}
    assert statuses[(ItemKind.PRACTICE, "ext-0000")] is ItemStatus.UPDATED
    assert statuses[(ItemKind.FORM, "Intake Form")] is ItemStatus.UNCHANGED
    # The main user predates the plan and has no external ID: found by email and given it, not made twice.
    assert statuses[(ItemKind.PRACTITIONER, "ext-0000-main")] is ItemStatus.UPDATED
    adopted = next(i for i in report.items if i.key == "ext-0000-main")
    assert adopted.changed[0] == "external_id"
    main = fake.practitioner("ext-0000", "ext-0000-main")
    assert main.id == fake.practice("ext-0000").main_practitioner_id
    assert_converged(fake, plan)


async def test_an_unlisted_main_user_of_an_existing_practice_is_named_so_assistants_can_use_it(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    fake.add_practice(
        ExternalPracticeId="ext-0000",
        PracticeName="Practice 0",
        FirstName="Ann",
        LastName="Lee0",
        Email="ann0@example.com",
    )
    data = plan_data(1)
    practice = data["practices"][0]
    practice["practitioners"] = [
        p for p in practice["practitioners"] if p["external_practitioner_id"] != "ext-0000-main"
    ]
    practice["assistants"][0]["practitioner_ids"] = ["ext-0000-main"]
    plan = parse_plan(data)
    report = await provision(partner, plan)
    assert report.ok, report.failures
    main = fake.practitioner("ext-0000", "ext-0000-main")
    assert main.id == fake.practice("ext-0000").main_practitioner_id
    assert fake.assistants("ext-0000")[0].practitioner_ids == [main.id]
    fake.reset_stats()
    assert (await provision(partner, plan)).ok and writes(fake) == 0


async def test_an_assistant_made_by_hand_is_adopted_by_email_not_duplicated(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    plan = parse_plan(plan_data(1))
    await provision(partner, plan)
    desk = fake.assistants("ext-0000")[0]
    await partner.practice("ext-0000").assistants.delete(desk.id)
    made_by_hand = await partner.practice("ext-0000").assistants.create(name="Cy", email="DESK0@example.com")
    fake.reset_stats()
    report = await provision(partner, plan)
    assert report.ok and fake.stats.calls[("POST", "/api/v1/assistants")] == 0
    [assistant] = fake.assistants("ext-0000")
    assert assistant.id == made_by_hand.id and assistant.external_id == "ext-0000-desk"
    [item] = [i for i in report.items if i.key == "ext-0000-desk"]
    assert item.status is ItemStatus.UPDATED and item.changed[0] == "external_id"


async def test_the_owner_listed_as_a_practitioner_is_adopted_in_a_new_practice(
    fake: FakeIntakeQ, partner: PartnerClient
) -> None:
    # No main_practitioner_external_id, but the practice's own email listed as a practitioner: that is the
    # main user IntakeQ makes with the practice, and must be given the external ID, not made a second time.
    data = plan_data(1)
    del data["practices"][0]["external_practitioner_id"]
    plan = parse_plan(data)
    dry = await provision(partner, plan, dry_run=True)
    assert {(i.key, i.status) for i in dry.items if i.kind is ItemKind.PRACTITIONER} == {
        ("ext-0000-main", ItemStatus.UPDATED),
        ("ext-0000-dr", ItemStatus.CREATED),
    }
    assert writes(fake) == 0
    report = await provision(partner, plan)
    assert report.ok
    people = fake.practitioners("ext-0000")
    assert sorted(p.email for p in people) == ["ann0@example.com", "bo0@example.com"]
    main = fake.practitioner("ext-0000", "ext-0000-main")
    assert main.id == fake.practice("ext-0000").main_practitioner_id
    fake.reset_stats()
    assert (await provision(partner, plan)).ok and writes(fake) == 0


async def test_dry_run_reads_only_and_says_what_it_would_do(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    data = plan_data(2)
    await provision(partner, parse_plan(plan_data(1)))
    data["practices"][0]["practice_name"] = "Renamed"
    fake.reset_stats()
    report = await provision(partner, parse_plan(data), dry_run=True)
    assert writes(fake) == 0
    assert report.dry_run and not report.failures
    statuses = {(i.practice, i.kind, i.key): i.status for i in report.items}
    assert statuses[("ext-0000", ItemKind.PRACTICE, "ext-0000")] is ItemStatus.UPDATED
    assert {s for (p, _, _), s in statuses.items() if p == "ext-0001"} == {ItemStatus.CREATED, ItemStatus.UNCHANGED}
    assert statuses[("ext-0001", ItemKind.PRACTITIONER, "ext-0001-main")] is ItemStatus.UNCHANGED
    # Nothing was sent for the missing practice: no key, no listings.
    assert fake.stats.calls[("GET", "/api/partner/practice/{practiceId}/key")] == 1


# ----- failures


async def test_one_failing_practice_does_not_stop_the_others(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    data = plan_data(3)
    data["practices"][1]["practitioners"][1]["role_name"] = "No Such Role"  # IntakeQ refuses unknown roles
    report = await provision(partner, parse_plan(data))
    assert not report.ok
    bad = {(i.kind, i.key): i for i in report.failures}
    assert set(bad) == {(ItemKind.PRACTITIONER, "ext-0001-dr"), (ItemKind.ASSISTANT, "ext-0001-desk")}
    assert bad[(ItemKind.PRACTITIONER, "ext-0001-dr")].status is ItemStatus.FAILED
    assert "400" in (bad[(ItemKind.PRACTITIONER, "ext-0001-dr")].reason or "")
    skipped = bad[(ItemKind.ASSISTANT, "ext-0001-desk")]
    assert skipped.status is ItemStatus.SKIPPED and "ext-0001-dr" in (skipped.reason or "")
    # The same practice's forms do not depend on its practitioners; the other practices are whole.
    assert {f.name for f in fake.forms("ext-0001") if f.type != "ConsentForm"} == {"Intake Form", "Progress Note"}
    assert len(fake.assistants("ext-0000")) == len(fake.assistants("ext-0002")) == 1
    assert all(fake.partner_key not in (i.reason or "") for i in report.items)


async def test_a_bug_is_reported_per_item_and_does_not_hang_the_job(
    fake: FakeIntakeQ, partner: PartnerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await provision(partner, parse_plan(plan_data(3)))
    real = job_module._practice_changes

    def broken(spec: Any, current: Any) -> tuple[str, ...]:
        if spec.external_id == "ext-0001":
            raise TypeError("boom")
        return real(spec, current)

    monkeypatch.setattr(job_module, "_practice_changes", broken)
    report = await asyncio.wait_for(provision(partner, parse_plan(plan_data(3))), 10)
    failed = [i for i in report.items if i.status is ItemStatus.FAILED]
    assert {i.practice for i in failed} == {"ext-0001"} and len(failed) == 6
    assert all("internal error: TypeError: boom" in (i.reason or "") for i in failed)
    assert len(report.items) == 18


class DropAfterFirstCopy(httpx.AsyncBaseTransport):
    """Lets the first form copy reach the server, then loses the answer: the copy's outcome is unknown."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.dropped = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/copyForm") and not self.dropped:
            self.dropped += 1
            await response.aread()
            raise httpx.ReadError("connection lost after the request was sent", request=request)
        return response


async def test_a_copy_whose_answer_was_lost_is_checked_before_copying_again(fake: FakeIntakeQ) -> None:
    transport = DropAfterFirstCopy(fake.transport())
    plan = parse_plan(plan_data(1))
    async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=transport) as partner:
        report = await provision(partner, plan)
    assert transport.dropped == 1 and report.ok
    assert fake.stats.calls[("POST", "/api/partner/practice/copyForm")] == 2  # two forms, no second try of the first
    assert fake.stats.calls[("GET", "/api/partner/practice/{practiceId}/forms")] == 1  # the look after the lost answer
    assert_converged(fake, plan)


async def test_master_forms_are_checked_before_any_write(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    data = plan_data(2)
    data["practices"][1]["forms"] = ["Intake Form", "Intake Frm"]
    with pytest.raises(PlanError) as caught:
        await provision(partner, parse_plan(data, source="plan.json"))
    text = str(caught.value)
    assert "plan.json: practices[1] (ext-0001).forms[1]" in text and "'Intake Frm'" in text
    assert "Intake Form" in text  # the message lists the master forms there are
    assert writes(fake) == 0 and not fake.practices


# ----- crashes and faults


async def test_a_run_cancelled_midway_is_finished_by_the_next_run(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    plan = parse_plan(plan_data(20))
    done: list[ItemResult] = []
    enough = asyncio.Event()

    def on_item(item: ItemResult) -> None:
        done.append(item)
        if len(done) == 40:
            enough.set()

    task = asyncio.create_task(provision(partner, plan, concurrency=5, on_progress=on_item))
    await enough.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(done) < plan.item_count and fake.practices
    report = await provision(partner, plan, concurrency=5)
    assert report.ok
    assert_converged(fake, plan)


async def test_a_fatal_spell_then_a_rerun_converges_without_duplicates(fake: FakeIntakeQ) -> None:
    plan = parse_plan(plan_data(20))

    def spell_begins(_: object) -> None:  # the outage starts once the run is under way
        fake.faults = Faults(p5xx=0.5, p_drop=0.2)

    async with client(fake, max_retries=0) as partner:
        broken = await provision(partner, plan, concurrency=5, on_progress=spell_begins)
        assert not broken.ok
        assert len(broken.items) == plan.item_count  # every item accounted for, even in a bad spell
        fake.faults = Faults()
        report = await provision(partner, plan, concurrency=5)
    assert report.ok
    assert_converged(fake, plan)


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_few_percent_of_faults_converge_in_a_couple_of_runs(seed: int) -> None:
    faults = Faults(p429=0.02, p5xx=0.02, p_drop=0.02, p_malformed=0.02, retry_after=0)
    fake = FakeIntakeQ(seed=seed, faults=faults)
    plan = parse_plan(plan_data(40))
    async with client(fake) as partner:
        for _ in range(3):
            report = await provision(partner, plan, concurrency=8)
            assert len(report.items) == plan.item_count  # nothing lost: each item converged or is reported
            if report.ok:
                break
    assert report.ok
    assert sum(fake.stats.faults.values()) > 0
    assert_converged(fake, plan)


# What an item's reason reads like when an injected fault outlasted the retries (or a POST met one, which is
# never resent blind), and the skips that follow from such a failure in the same run.
INJECTED = re.compile(
    r"(connection failed|timed out): (RemoteProtocolError|ReadTimeout)"
    r"|(429 Too Many Requests|500 Internal Server Error|502 Bad Gateway|503 Service Unavailable) on "
    r"|unexpected 200 response body on "
    r"|^the practice could not be created$|^practitioner \S+ did not converge$"
)


@pytest.mark.parametrize("reading", list(READINGS))
async def test_soak_150_practices_under_5_percent_mixed_faults(reading: str) -> None:
    # The in-process fake answers inside the client's own event loop, so a read timeout also times the loop's
    # queue of 64 requests: on 2 loaded cores a clean answer took up to 0.2 s. The read timeout leaves room for
    # that; hangs still outlast it, so each one still ends as a ReadTimeout.
    faults = Faults(
        p429=0.01,
        p5xx=0.012,
        p_drop=0.01,
        p_hang=0.006,
        p_malformed=0.012,
        retry_after=0,
        p_retry_after_missing=0.5,
        hang_seconds=1.0,
    )
    fake = play(FakeIntakeQ(seed=5, faults=faults), reading)
    plan = parse_plan(plan_data(150))
    timeout = httpx.Timeout(5.0, read=0.5)
    assert timeout.read is not None and faults.hang_seconds > timeout.read  # a hang is a timeout, not a slow answer
    # A 429 without Retry-After pauses the key for everyone; a minute (the default) is too long for a test.
    limits = RateLimits(pause_after_429=0.05)
    async with client(fake, timeout=timeout, max_concurrency=64, limits=limits) as partner:
        # A re-run lists every practice's people and forms (~1,200 reads), so now and then one read meets a
        # fault on all 3 of its attempts and its items wait for the next run: a run that is not ok must owe
        # every failure to an injected fault, and some run within 6 must be ok.
        for _ in range(6):
            report = await provision(partner, plan, concurrency=32)
            assert len(report.items) == plan.item_count
            if report.ok:
                break
            not_injected = [(i.key, i.reason) for i in report.failures if not INJECTED.search(i.reason or "")]
            assert not not_injected, not_injected[:5]
    assert report.ok, report.failures[:5]
    for kind in ("429", "500", "502", "503", "drop", "hang", "malformed"):
        assert fake.stats.faults[kind] > 0, kind
    assert len(fake.practices) == 150
    assert_converged(fake, plan)


@pytest.mark.parametrize("paging", ["all", "paged", "ignores-page"])
async def test_a_thousand_practices_converge_and_rerun_without_duplicates_however_the_list_pages(paging: str) -> None:
    fake = FakeIntakeQ(seed=8, list_paging=paging)  # type: ignore[arg-type]
    practices = [
        {"external_practice_id": f"ext-{i:04d}", "practice_name": f"P{i}", "first_name": "A", "last_name": "B",
         "email": f"a{i}@example.com"}
        for i in range(1000)
    ]  # fmt: skip
    plan = parse_plan({"practices": practices})
    async with client(fake, max_concurrency=200) as partner:
        first = await provision(partner, plan, concurrency=100)
        fake.reset_stats()
        second = await provision(partner, plan, concurrency=100)
    assert first.ok and first.counts.get(ItemStatus.CREATED) == 1000
    assert second.ok and second.counts.get(ItemStatus.UNCHANGED) == 1000, second.failures[:3]
    assert len(fake.practices) == 1000 and len({p.external_id for p in fake.practices}) == 1000
    assert fake.stats.statuses.get(409, 0) == 0 and writes(fake) == 0


# ----- plan files


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_and_json_plans_load_alike(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        "plan.toml",
        """
[defaults]
forms = ["Intake Form", { name = "Progress Note", copy_attached_consent_forms = false }]
copy_attached_consent_forms = true
booking_enabled = false

[practices.ext-1]
practice_name = "A"
first_name = "B"
last_name = "C"
email = "a@b.c"
forms_enabled = true

[practices.ext-1.practitioners.dr-1]
first_name = "D"
last_name = "E"
email = "d@e.f"

[[practices.ext-1.assistants]]
external_assistant_id = "as-1"
name = "F"
email = "f@g.h"
practitioner_ids = ["dr-1"]
""",
    )
    data = json.loads(json.dumps(plan_data(1)))
    as_json = write(tmp_path, "plan.json", json.dumps(data))
    plan = load_plan(toml)
    (p,) = plan.practices
    assert (p.external_id, p.forms_enabled, p.booking_enabled) == ("ext-1", True, False)
    assert [(f.name, f.copy_consent_forms) for f in p.forms] == [("Intake Form", True), ("Progress Note", False)]
    assert p.practitioners[0].external_id == "dr-1" and p.assistants[0].practitioners == ("dr-1",)
    assert plan.item_count == 5
    assert load_plan(as_json) == parse_plan(data, source=str(as_json))


def test_a_bad_plan_names_file_item_and_field_for_every_problem(tmp_path: Path) -> None:
    data = plan_data(3)
    del data["practices"][0]["email"]
    data["practices"][1]["forms_enabled"] = "yes"
    data["practices"][1]["colour"] = "blue"
    data["practices"][2]["external_practice_id"] = "ext-0000"
    data["practices"][2]["assistants"][0]["practitioner_ids"] = ["dr-nobody"]
    data["practices"][2]["practitioners"][1]["external_practitioner_id"] = "ext-0002-main"
    path = write(tmp_path, "bad.json", json.dumps(data))
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    error = caught.value
    lines = str(error)
    expected = [
        "practices[0] (ext-0000): email: required field is missing",
        "practices[1] (ext-0001): forms_enabled: must be true or false, not a string",
        "practices[1] (ext-0001): colour: unknown field",
        "practices[2] (ext-0000): external_practice_id: duplicate practice external ID (also practices[0] (ext-0000))",
        "practices[2] (ext-0000).assistants[0] (ext-0002-desk): practitioner_ids: 'dr-nobody' is not a practitioner",
        "practices[2] (ext-0000).practitioners[1] (ext-0002-main): external_practitioner_id: duplicate practitioner "
        "external ID",
    ]
    for text in expected:
        assert f"{path}: {text}" in lines, text
    assert len(error.problems) == len(expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.toml", "practices = [\n  { external_id = 'a' ", "not valid TOML"),
        ("p.json", '{"practices": [}', "not valid JSON"),
        ("p.json", '{"practices": {"a": {}, "a": {}}}', "key 'a' appears twice"),
        ("p.yaml", "practices: []", "must end in .toml or .json"),
        ("p.json", "[]", "must be a table/object"),
        (
            "p.json",
            '{"practices": [{"practice_name": 3}]}',
            "practices[0]: external_practice_id: required field is missing",
        ),
    ],
)
def test_unreadable_plans_are_refused_with_the_reason(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_text_that_could_never_be_sent_is_a_plan_error(tmp_path: Path) -> None:
    # JSON can spell a lone surrogate; the client refuses to send one, so the plan must refuse it up front.
    path = tmp_path / "plan.json"
    practice = {"practice_name": "P\\ud800", "first_name": "A", "last_name": "L", "email": "a@x.com"}
    bad_ext = {**practice, "practice_name": "P", "external_practice_id": "e\\udc00"}
    first = {**practice, "external_practice_id": "e1"}
    text = json.dumps({"defaults": {"forms": ["F\\ud800"]}, "practices": [first, bad_ext]})
    path.write_text(text.replace("\\\\", "\\"), encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    problems = [str(p) for p in caught.value.problems]
    assert any("practices[0] (e1): practice_name" in p and "surrogate" in p for p in problems)
    assert any("practices[1]: external_practice_id" in p and "surrogate" in p for p in problems)
    assert any(p.startswith("defaults.forms[0]") for p in problems)


def test_practice_forms_override_defaults_and_keep_the_consent_flag() -> None:
    data = plan_data(2)
    data["practices"][0]["forms"] = ["Adult History"]
    data["practices"][1]["copy_attached_consent_forms"] = False
    plan = parse_plan(data)
    assert [(f.name, f.copy_consent_forms) for f in plan.practices[0].forms] == [("Adult History", True)]
    assert [f.copy_consent_forms for f in plan.practices[1].forms] == [False, False]
    assert plan.form_names == {"Intake Form", "Progress Note", "Adult History"}


async def test_the_report_serialises_to_json(fake: FakeIntakeQ, partner: PartnerClient) -> None:
    report = await provision(partner, parse_plan(plan_data(1)))
    data = json.loads(report.to_json())
    assert data["ok"] is True and data["dry_run"] is False
    assert data["counts"] == {"created": 5, "updated": 0, "unchanged": 1, "failed": 0, "skipped": 0}
    assert {"kind": "practice", "practice": "ext-0000", "key": "ext-0000", "status": "created"} in data["items"]


async def test_concurrency_must_be_positive(partner: PartnerClient) -> None:
    with pytest.raises(ValueError):
        await provision(partner, parse_plan(plan_data(1)), concurrency=0)


async def test_two_jobs_on_the_same_external_ids_at_once_make_one_object_each() -> None:
    """Two runs (two clients, as two processes would be) of plans that share external IDs, one with other practice
    names: each practice, practitioner and assistant exists once, and nothing fails. A run whose create met the
    other's object with other details updates it to its own plan (ConflictError.existing)."""
    fake = FakeIntakeQ(seed=17)
    mine, theirs = plan_data(6), plan_data(6)
    for data in (mine, theirs):
        data["defaults"] = {}  # form copies are not idempotent across processes; they are not the point here
    for practice in theirs["practices"]:
        practice["practice_name"] += " (theirs)"
        practice["practitioners"][1]["last_name"] += " (theirs)"
        practice["assistants"][0]["name"] += " (theirs)"
    async with client(fake) as one, client(fake) as other:
        reports = await asyncio.gather(
            provision(one, parse_plan(mine), concurrency=3), provision(other, parse_plan(theirs), concurrency=3)
        )
    assert len(fake.practices) == 6
    for practice in fake.practices:
        assert len([p for p in fake.practitioners(practice.id) if p.external_id]) == 2
        assert len(fake.assistants(practice.id)) == 1
    items = [i for r in reports for i in r.items]
    assert not [i for i in items if i.status is ItemStatus.FAILED]
    assert {i.status for i in items} <= {ItemStatus.CREATED, ItemStatus.UPDATED, ItemStatus.UNCHANGED}
    assert ItemStatus.UPDATED in {i.status for i in items}  # some create met the other run's object
