"""`make demo`: provision 200 practices into the fake IntakeQ over real loopback HTTP, twice, then sign in.

Run 1 creates everything; run 2 must find nothing to do (the fake counts its create/update calls to prove
it); last, one single-sign-on URL for a practice's main user. The progress bar and tables are the CLI's own.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx

from intakeq_partner import PartnerClient, sso_url
from intakeq_partner.cli import print_summary, run_provision
from intakeq_partner.provisioning import load_plan
from intakeq_partner.testing import FakeIntakeQ

PLAN = Path(__file__).with_name("plan.toml")
WRITES = ("POST", "PUT", "DELETE")


def writes(fake: FakeIntakeQ) -> int:
    """Create/update/delete calls the fake has answered or refused since its stats were reset."""
    return sum(n for (method, _), n in fake.stats.calls.items() if method in WRITES)


async def main() -> int:
    started = time.perf_counter()
    plan = load_plan(PLAN)
    fake = FakeIntakeQ(seed=2024)
    async with fake.serve() as base_url:
        print(f"Fake IntakeQ listening at {base_url}; plan {PLAN.name}: {len(plan.practices)} practices\n")
        async with PartnerClient(fake.partner_key, base_url=base_url) as partner:
            first = await run_provision(partner, plan, concurrency=20, title="Run 1")
            print_summary(first, title="Run 1: from an empty account")
            print(f"Requests in run 1: {sum(fake.stats.calls.values())}, of which writes: {writes(fake)}\n")

            fake.reset_stats()
            second = await run_provision(partner, plan, concurrency=20, title="Run 2")
            print_summary(second, title="Run 2: the same plan again")
            print(
                f"Requests in run 2: {sum(fake.stats.calls.values())}, of which create/update calls: {writes(fake)}\n"
            )

            practice = plan.practices[0]
            token = await partner.practices.ephemeral_token(practice.external_id)
            print(f"Single sign-on for the main user of {practice.external_id} (one use, expires in minutes):")
            url = sso_url(base_url, token, path="templates")
            print(f"  {url}")
            async with httpx.AsyncClient() as browser:  # what a browser does with it: one redirect, one session
                landed = await browser.get(url, follow_redirects=True)
            print(f"  opening it once lands on {landed.url.path} ({landed.status_code})\n")
    ok = first.ok and second.ok and second.changes == 0
    print(f"Demo {'passed' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
