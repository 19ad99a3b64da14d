"""Rate-limit adherence: the fake refuses beyond R requests/s; `PartnerClient(rate_limit=R)` must stay under.

The fake counts a sliding one-second window per key and answers 429 beyond R. Many workers call a cheap
partner endpoint as fast as they can for a few seconds through one client built with `rate_limit=R`. The
server's own counters say how many 429s it sent (the client would retry them silently), and the achieved
rate is the successful calls over the wall time of the load.
"""

from __future__ import annotations

import asyncio
import time

from intakeq_partner import PartnerClient
from intakeq_partner.testing import FakeIntakeQ, Faults

from ._common import Result, median

RATE = 200.0
TARGET_SHARE = 0.90


async def _load(rate: float, seconds: float, workers: int) -> tuple[int, int, float]:
    """(successful calls, 429s the server sent, wall seconds)."""
    fake = FakeIntakeQ(seed=3, faults=Faults(rate_limit=rate))
    async with fake.serve(port=0) as base_url:
        async with PartnerClient(fake.partner_key, base_url=base_url, rate_limit=rate) as partner:
            done = 0
            deadline = 0.0

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    await partner.forms.master()
                    done += 1

            fake.reset_stats()
            start = time.perf_counter()
            deadline = start + seconds
            await asyncio.gather(*(worker() for _ in range(workers)))
            elapsed = time.perf_counter() - start
    return done, fake.stats.statuses[429], elapsed


def run(rate: float = RATE, seconds: float = 4.0, repeats: int = 3, workers: int = 50) -> Result:
    started = time.perf_counter()
    result = Result("Rate-limit adherence")
    shares: list[float] = []
    refusals = 0
    for i in range(repeats):
        done, refused, elapsed = asyncio.run(_load(rate, seconds, workers))
        achieved = done / elapsed
        shares.append(achieved / rate)
        refusals += refused
        result.details.append(
            f"run {i + 1}: {done} calls in {elapsed:.2f} s = {achieved:.1f}/s of {rate:.0f}/s "
            f"({achieved / rate:.1%}), server sent {refused} x 429"
        )
    result.add(f"429s the server sent (R={rate:.0f}/s, {repeats} x {seconds:.0f} s)", str(refusals), "0", refusals == 0)
    share = median(shares)
    result.add("achieved rate / R (median)", f"{share:.1%}", f">= {TARGET_SHARE:.0%}", share >= TARGET_SHARE)
    result.details.append(f"{workers} concurrent workers calling GET /api/partner/masterForms through one client")
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(seconds=1.5, repeats=1)
