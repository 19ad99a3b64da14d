"""Calls per practice that the provisioning job makes: a first run, a re-run of a finished plan, and a re-run
where every practice, practitioner and assistant changed, under each update reading of the fake; and the
calls a resumed run makes after the first died half-way (1,000 practices), with and without a journal.

Counts, not timings: the fake runs in-process and every request it sees is counted. A re-run that changes
everything shows what full-body updates cost (the job reads a practice again before updating it; the
practitioners and assistants it sends back whole are the ones it has just listed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from intakeq_partner import PartnerClient
from intakeq_partner.provisioning import Journal, Plan, provision
from intakeq_partner.testing import FakeIntakeQ

from ._common import Result
from ._plan import build_plan


def _everything_changed(plan: Plan) -> Plan:
    practices = tuple(
        dataclasses.replace(
            p,
            city="Shelbyville",
            practitioners=tuple(dataclasses.replace(d, last_name=d.last_name + "-x") for d in p.practitioners),
            assistants=tuple(dataclasses.replace(a, name=a.name + "-x") for a in p.assistants),
        )
        for p in plan.practices
    )
    return dataclasses.replace(plan, practices=practices)


async def _counts(n: int, semantics: str, store: bool = False) -> tuple[float, float, float]:
    """Calls per practice of a first run, a re-run and a re-run with everything changed, each run a new client
    (as a new process would be); with `store`, all three share a key store (a dict here)."""
    fake = FakeIntakeQ(seed=1, update_semantics=semantics)  # type: ignore[arg-type]
    plan = build_plan(n)
    per_run: list[float] = []
    keys: dict[str, str] = {}
    options: dict[str, Any] = {"key_store": _DictStore(keys)} if store else {}
    for this_plan in (plan, plan, _everything_changed(plan)):
        async with PartnerClient(
            fake.partner_key, base_url=fake.base_url, transport=fake.transport(), **options
        ) as partner:
            fake.reset_stats()
            report = await provision(partner, this_plan, concurrency=20)
            assert report.ok, report.failures[:3]
            per_run.append(fake.stats.logged / n)
    first, again, changed = per_run
    return first, again, changed


class _DictStore:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    def get(self, practice: str) -> str | None:
        return self.keys.get(practice)

    def put(self, practice: str, key: str) -> None:
        self.keys[practice] = key

    def discard(self, practice: str) -> None:
        self.keys.pop(practice, None)


# The least a practice of the bench's plan (2 practitioners, 1 assistant, 2 forms) can cost, per scenario:
# first run: create, fetch its key (a new practice's key exists only now), 2 practitioner creates, 1 assistant
# create, 2 form copies = 7; nothing changed: list practitioners, assistants and forms to see that = 3 (0 if a
# journal is trusted); everything changed: those 3 reads, the practice read again before its update (the list
# read at the start may be days old in a long job, and a PUT clears what it leaves out), 1 practice, 2
# practitioner and 1 assistant updates = 8.
MINIMUM = {"first run": 7, "re-run, nothing changed": 3, "re-run, everything changed": 8}


class _Killed(BaseException):
    """Stands for the process dying half-way."""


async def _resumed(n: int, journal: bool) -> tuple[int, int, int]:
    """(calls of the first run until its death, calls of the resumed run, practices the journal vouched for)."""
    fake = FakeIntakeQ(seed=1)
    plan = build_plan(n)
    reported = 0

    def on_item(_: object) -> None:
        nonlocal reported
        reported += 1
        if reported >= plan.item_count // 2:
            raise _Killed

    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        state = Journal(Path(tmp, "state.db")) if journal else None
        async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport()) as partner:
            try:
                await provision(partner, plan, concurrency=20, on_progress=on_item, journal=state)
            except (_Killed, BaseExceptionGroup):
                pass
        first = fake.stats.logged
        vouched = len(state.confirmed(plan.practices)) if state is not None else 0
        fake.reset_stats()
        async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport()) as partner:
            report = await provision(partner, plan, concurrency=20, journal=state)
        assert report.ok, report.failures[:3]
        if state is not None:
            state.close()
    return first, fake.stats.logged, vouched


def run(n: int = 200, resume: int = 1000) -> Result:
    started = time.perf_counter()
    result = Result("Calls per practice")
    for journal in (False, True):
        killed, resumed, vouched = asyncio.run(_resumed(resume, journal))
        name = "with --state journal" if journal else "without journal"
        result.add(
            f"resumed run after a kill half-way, {resume} practices, {name}",
            f"{resumed} calls",
            "(information)",
            note=f"the killed run made {killed}; the journal vouched for {vouched} practices" if journal else "",
        )
    for semantics in ("merge", "replace"):
        plain = asyncio.run(_counts(n, semantics))
        stored = asyncio.run(_counts(n, semantics, store=True))
        note = "includes a few calls per run: master forms, the practice list's pages"
        for i, scenario in enumerate(MINIMUM):
            result.add(
                f"{scenario} ({semantics}): without / with a key store",
                f"{plain[i]:.2f} / {stored[i]:.2f}",
                f"least possible {MINIMUM[scenario]}",
                note=note if i == 0 else "",
            )
    result.details.append(f"{n} practices, each 2 practitioners, 1 assistant, 2 forms; in-process fake, concurrency 20")
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(n=20, resume=40)
