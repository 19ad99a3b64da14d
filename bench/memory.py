"""Memory: resident-set growth while `provision()` makes 10,000 practices (fake in-process, `fake.transport()`).

Runs in a fresh child process so that nothing measured before pollutes the numbers. VmRSS is read before the
run (client, fake and plan already built, one warm-up practice done) and after it. The fake lives in the same
process and its state grows with every practice, so afterwards the report and then the fake's state are
dropped, freed memory is handed back to the OS (`malloc_trim`), and each drop in RSS is attributed to what
was dropped; the client-side growth is the total minus the fake's share. Freed memory that the allocator keeps
(fragmentation) stays counted against the client, so the client figure is an upper bound.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import subprocess
import sys
import time
from typing import Any

from ._common import ROOT, Result, rss_mb

TARGET_MB = 50.0


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS then drops less, and the client figure is higher
        pass


async def _child(n: int, concurrency: int) -> dict[str, Any]:
    from intakeq_partner import PartnerClient
    from intakeq_partner.provisioning import provision
    from intakeq_partner.testing import FakeIntakeQ

    from ._plan import build_plan

    fake = FakeIntakeQ(seed=11)
    partner = PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport())
    await provision(partner, build_plan(1, prefix="warm-up"), concurrency=1)
    plan = build_plan(n)
    _trim()
    before = rss_mb()
    started = time.perf_counter()
    report = await provision(partner, plan, concurrency=concurrency)
    elapsed = time.perf_counter() - started
    assert report.ok, report.failures[:3]
    items, calls = len(report.items), sum(fake.stats.statuses.values())
    _trim()
    after = rss_mb()
    await partner.aclose()
    return {"n": n, "items": items, "calls": calls, "elapsed": elapsed, "before": before, "after": after}


def _fake_only(n: int) -> dict[str, Any]:
    """The same state changes and request log, applied to a fake directly: what the fake alone grows by."""
    from intakeq_partner._generated import models
    from intakeq_partner.testing import FakeIntakeQ, RequestRecord

    from ._plan import build_plan

    fake = FakeIntakeQ(seed=11)
    state = fake.state
    masters = {f.name: f.id for f in fake.master_forms}
    plan = build_plan(n)
    _trim()
    before = rss_mb()
    for spec in plan.practices:
        practice = state.create_practice(
            models.PracticeCreate(spec.practice_name, spec.first_name, spec.last_name, spec.email,
                                  external_practice_id=spec.external_id, city=spec.city)
        )  # fmt: skip
        for p in spec.practitioners:
            state.create_practitioner(
                practice,
                models.PractitionerCreate(p.first_name, p.last_name, p.email, role_name=p.role_name,
                                          external_practitioner_id=p.external_id),
            )  # fmt: skip
        for a in spec.assistants:
            state.create_assistant(
                practice,
                models.AssistantCreate(a.name, a.email, external_assistant_id=a.external_id,
                                       practitioner_ids=list(a.practitioners or ())),
            )  # fmt: skip
        for f in spec.forms:
            state.copy_form(models.CopyFormRequest(masters[f.name], practice.id, f.copy_consent_forms))
        auth = f"practice:{practice.id}"
        for method, route, who in (("POST", "/practice", "partner"), ("GET", "/practice/{practiceId}/key", "partner"),
                                   ("POST", "/practitioners", auth), ("POST", "/practitioners", auth),
                                   ("POST", "/assistants", auth), ("POST", "/practice/copyForm", "partner"),
                                   ("POST", "/practice/copyForm", "partner")):  # fmt: skip
            fake.stats.record(RequestRecord(method, f"/api{route}/{practice.id}", route, 200, who))
            fake.stats.calls[(method, route)] += 1
            fake.stats.statuses[200] += 1
    _trim()
    return {"fake_only": rss_mb() - before}


def run(n: int = 10_000, concurrency: int = 50) -> Result:
    started = time.perf_counter()
    result = Result("Memory")
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", str(n), str(concurrency)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", str(n), "fake-only"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fake_only = json.loads(out.strip().splitlines()[-1])["fake_only"]
    total = got["after"] - got["before"]
    client = total - fake_only
    result.add(
        f"client-side RSS growth, {n:,} practices", f"{client:.1f} MB", f"< {TARGET_MB:.0f} MB", client < TARGET_MB
    )
    result.add("total RSS growth (client + in-process fake)", f"{total:.1f} MB", "(information)")
    result.add("the fake's own growth (same state, replayed without HTTP)", f"{fake_only:.1f} MB", "(information)")
    result.details += [
        f"{n:,} practices, {got['calls']:,} calls in {got['elapsed']:.1f} s, concurrency {concurrency}",
        f"VmRSS before {got['before']:.1f} MB, after {got['after']:.1f} MB (+{total:.1f} MB)",
        f"the fake alone grows by {fake_only:.1f} MB for the same practices, forms and request log (measured in a "
        "separate process by applying the same changes to its state directly); client = total - fake",
        f"the client-side figure includes the returned report ({got['items']:,} items), which grows with the plan",
    ]
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(n=1000)


if __name__ == "__main__":
    count = int(sys.argv[1])
    if sys.argv[2] == "fake-only":
        print(json.dumps(_fake_only(count)))
    else:
        print(json.dumps(asyncio.run(_child(count, int(sys.argv[2])))))
