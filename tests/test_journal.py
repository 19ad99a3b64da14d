"""The provisioning journal (`--state FILE`): a resumed run trusts it, changed entries are redone, SIGKILL-safe."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Served
from test_provisioning import assert_converged, client, plan_data

from intakeq_partner import PartnerClient, cli
from intakeq_partner._errors import InvalidRequestError
from intakeq_partner.provisioning import ItemKind, ItemResult, ItemStatus, Journal, Plan, parse_plan, provision
from intakeq_partner.testing import FakeIntakeQ, Faults

KEY_ROUTE = ("GET", "/api/partner/practice/{practiceId}/key")


class Killed(BaseException):
    """Stands for the process dying: raised from inside the run, nothing of it goes on."""


async def interrupted(partner: PartnerClient, plan: Plan, journal: Journal | None, items: int) -> None:
    """A run that dies once `items` items were reported."""
    seen = 0

    def on_item(_: ItemResult) -> None:
        nonlocal seen
        seen += 1
        if seen >= items:
            raise Killed

    with pytest.raises((Killed, BaseExceptionGroup)):
        await provision(partner, plan, concurrency=4, on_progress=on_item, journal=journal)


async def test_a_resumed_run_sends_nothing_for_what_the_journal_confirms(tmp_path: Path) -> None:
    plan = parse_plan(plan_data(20))
    calls: dict[str, int] = {}
    for name in ("with journal", "without"):
        fake = FakeIntakeQ(seed=5)
        with Journal(tmp_path / f"{name}.db") as journal:
            async with client(fake) as partner:
                await interrupted(partner, plan, journal, plan.item_count // 2)
            confirmed = journal.confirmed(plan.practices)
            fake.reset_stats()
            async with client(fake) as partner:  # a new process: no practice key cached
                report = await provision(
                    partner, plan, concurrency=4, journal=journal if name == "with journal" else None
                )
        assert report.ok
        assert_converged(fake, plan)
        calls[name] = fake.stats.logged
        if name == "with journal":
            assert 5 <= len(confirmed) < 20
            # Confirmed practices: reported unchanged on the journal's word, and not one call for them.
            vouched = [item for item in report.items if item.practice in confirmed]
            assert vouched and all(i.status is ItemStatus.UNCHANGED and "journal" in (i.reason or "") for i in vouched)
            assert fake.stats.calls[KEY_ROUTE] == 20 - len(confirmed)
            with Journal(tmp_path / f"{name}.db") as journal:
                assert len(journal.confirmed(plan.practices)) == 20  # and now all of it
    assert calls["with journal"] < calls["without"]


async def test_an_item_is_in_the_journal_before_it_is_reported(tmp_path: Path) -> None:
    fake = FakeIntakeQ(seed=5)
    plan = parse_plan(plan_data(3))
    path = tmp_path / "state.db"
    reader = None
    missing: list[ItemResult] = []

    def on_item(item: ItemResult) -> None:
        assert reader is not None
        row = reader.execute(
            "SELECT status FROM items WHERE practice = ? AND kind = ? AND key = ?",
            (item.practice, item.kind.value, item.key),
        ).fetchone()
        if row != (item.status.value,):
            missing.append(item)

    with Journal(path) as journal:
        reader = sqlite3.connect(path)  # another connection: sees only what is committed
        async with client(fake) as partner:
            report = await provision(partner, plan, on_progress=on_item, journal=journal)
        reader.close()
    assert report.ok and len(report.items) == plan.item_count and missing == []


async def test_a_changed_entry_or_a_failed_item_is_worked_on_again_and_verify_trusts_nothing(tmp_path: Path) -> None:
    fake = FakeIntakeQ(seed=5)
    plan = parse_plan(plan_data(6))
    with Journal(tmp_path / "state.db") as journal:
        async with client(fake) as partner:
            assert (await provision(partner, plan, journal=journal)).ok
            # One practice's entry changes; another's practitioner was failed by a later run.
            changed = dataclasses.replace(plan.practices[0], city="Bergen")
            plan2 = dataclasses.replace(plan, practices=(changed, *plan.practices[1:]))
            spec = plan.practices[1]
            journal.write(
                ItemResult(
                    ItemKind.PRACTITIONER, spec.external_id, spec.practitioners[1].external_id, ItemStatus.FAILED
                ),
                "",
            )
            fake.reset_stats()
            report = await provision(partner, plan2, journal=journal)
            assert report.ok
            worked = {item.practice for item in report.items if item.reason is None}
            assert worked == {changed.external_id, spec.external_id}
            assert fake.stats.calls[KEY_ROUTE] == 2
            assert fake.practice(changed.external_id).city == "Bergen"

            fake.reset_stats()
            report = await provision(partner, plan2, journal=journal, verify=True)
            assert report.ok and fake.stats.calls[KEY_ROUTE] == 6  # every practice read again


def test_a_journal_that_is_a_folder_or_not_a_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="folder"):
        Journal(tmp_path)
    bad = tmp_path / "not.db"
    bad.write_text("this is not a database, " * 100)
    with pytest.raises(InvalidRequestError, match="cannot be used as a journal"):
        Journal(bad)


def test_a_run_killed_with_sigkill_resumes_from_its_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command in a process of its own, killed with SIGKILL once part of the plan is journaled: the journal
    is intact, holds only what IntakeQ holds, and the next run finishes the rest without reading it again."""
    fake = FakeIntakeQ(seed=7, faults=Faults(latency=0.01))
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan_data(40)))
    plan = parse_plan(plan_data(40))
    state = tmp_path / "state.db"
    with Served(fake) as served:
        env = dict(os.environ, INTAKEQ_PARTNER_KEY=fake.partner_key, INTAKEQ_BASE_URL=served.url)
        command = [sys.executable, "-m", "intakeq_partner.cli", "provision", str(plan_path), "--plain"]
        child = subprocess.Popen(
            [*command, "--state", str(state), "--concurrency", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            rows = 0
            while rows < plan.item_count // 3:
                assert child.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.02)
                if state.exists():
                    with sqlite3.connect(state) as db:
                        try:
                            rows = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
                        except sqlite3.OperationalError:
                            rows = 0  # the table is not made yet
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(10)
        with Journal(state) as journal:
            confirmed = journal.confirmed(plan.practices)
        assert confirmed and len(confirmed) < 40
        held = {p.external_id for p in fake.practices}
        assert confirmed <= held
        # What the killed process sent just before it died may still be read and counted by the fake (in another
        # thread): wait until its count has stood still for a while, or the rerun is charged a request it never made.
        counted, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 0.3:
            if (now := sum(fake.stats.calls.values())) != counted:
                counted, quiet_since = now, time.monotonic()
            time.sleep(0.02)
        fake.reset_stats()
        monkeypatch.setenv("INTAKEQ_PARTNER_KEY", fake.partner_key)
        monkeypatch.setenv("INTAKEQ_BASE_URL", served.url)
        assert cli.main(["provision", str(plan_path), "--plain", "--state", str(state)]) == 0
        assert fake.stats.calls[KEY_ROUTE] == 40 - len(confirmed)
    assert_converged(fake, plan)
