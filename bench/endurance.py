"""Endurance: what a backend meets after weeks (issue 18), each figure measured at fcd877f and at this checkout,
side by side in one run, each in fresh child processes that import the code under test.

- masking: client CPU per error answer (a 404 with a short JSON body, through `PracticeClient` on a transport
  that answers in-process) with 0, 2,000 and 100,000 other keys held. Target: within 1.2x of 0 keys at 100,000.
- key revoked before first use: 200 callers join one key fetch whose key the fake revokes as it hands it out;
  how many calls fail, and how many key fetches it takes.
- event loop: the longest callback (every `Handle._run` timed, less the garbage collections inside it, which
  are the process's: see GC) while `practices.list()` reads and decodes a 10,000-practice answer (3.5 MB) from
  an in-process transport; also the longest gap a 1 ms ticker saw, and the longest collection. Target 20 ms.
- GC: the longest collection pause (gc.callbacks) and the total, during 3 x 2,000 concurrent calls of a
  process holding 100,000 records of its own, with and without gc.freeze() after start-up (information:
  what README's advice rests on). This checkout only.
- Redis trouble: bench/redis_trouble.py (4 processes, one key's budget of 20/s through Redis, call_timeout
  1.5 s) through each kind of trouble: 429s, APITimeoutErrors, warnings per worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import ROOT, Result, median

BEFORE = "fcd877f"

MASKING = r"""
import asyncio, json, resource, sys
import httpx
from intakeq_partner import PracticeClient
from intakeq_partner._secret import Secret

BODY = json.dumps({"Message": "No practitioner with this Id in this practice", "RequestId": "0HN7" + "A" * 20,
                   "Details": "Practitioner 5f0c2a lookup failed; see the documentation at https://example.test/x"})

class NotFound(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        return httpx.Response(404, content=BODY.encode(), headers={"Content-Type": "application/json"})

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

async def main(held, calls):
    keys = [Secret(f"{i:08x}a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3") for i in range(held)]
    client = PracticeClient("b" * 40, base_url="https://intakeq.test", transport=NotFound(), max_retries=0)
    for _ in range(50):
        try: await client.practitioners.delete("5f0c2a")
        except Exception: pass
    start = cpu()
    for _ in range(calls):
        try: await client.practitioners.delete("5f0c2a")
        except Exception as exc: assert type(exc).__name__ == "NotFoundError", exc
    print((cpu() - start) / calls * 1e6)
    assert len(keys) == held

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


REVOKED = r"""
import asyncio
from intakeq_partner import IntakeQError, PartnerClient
from intakeq_partner.testing import FakeIntakeQ

async def main():
    fake = FakeIntakeQ(seed=2)
    fake.add_practice(ExternalPracticeId="ext-r")
    lookup = fake.state.practice
    rotated = []
    def practice(ref):
        found = lookup(ref)
        if not rotated:  # the key fetch's lookup: revoke the key it is handing out, before anyone uses it
            rotated.append(ref)
            asyncio.get_running_loop().call_soon(fake.rotate_practice_key, ref)
        return found
    fake.state.practice = practice
    async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport()) as p:
        clinic = p.practice("ext-r")
        results = await asyncio.gather(*(clinic.practitioners.list() for _ in range(200)), return_exceptions=True)
    failed = sum(isinstance(r, IntakeQError) for r in results)
    fetches = sum(n for (method, path), n in fake.stats.calls.items() if path.endswith("/key"))
    print(failed, fetches)

asyncio.run(main())
"""

LOOP = r"""
import asyncio, gc, sys, time
import httpx
from asyncio import events
from bench import _data
from intakeq_partner import PartnerClient

BODY = _data.practices_body(10_000)

class Answers(httpx.AsyncBaseTransport):  # everything on page 1, nothing after
    async def handle_async_request(self, request):
        body = BODY if request.url.params.get("page", "1") == "1" else b"[]"
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

# The longest callback, less the collections that ran inside it (they are the process's, not the library's:
# see the GC figure), and the longest collection.
longest = [0.0]
collecting = [0.0, 0.0, 0.0]  # total seconds collecting, when the current one started, the longest one
def track(phase, info):
    now = time.perf_counter()
    if phase == "start":
        collecting[1] = now
    else:
        collecting[0] += now - collecting[1]
        collecting[2] = max(collecting[2], now - collecting[1])
gc.callbacks.append(track)
run = events.Handle._run
def timed(self):
    start, before = time.perf_counter(), collecting[0]
    try:
        return run(self)
    finally:
        longest[0] = max(longest[0], time.perf_counter() - start - (collecting[0] - before))
events.Handle._run = timed

async def main(rounds):
    gaps = [0.0]
    stop = False
    async def ticker():
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps[0] = max(gaps[0], now - last)
            last = now
    async with PartnerClient("p" * 40, base_url="https://intakeq.test", transport=Answers()) as partner:
        await partner.practices.list()  # warm-up: compiles the decoders
        worst, gap, pause = [], [], []
        for _ in range(rounds):
            longest[0] = 0.0
            gaps[0] = 0.0
            collecting[2] = 0.0
            stop = False
            tick = asyncio.ensure_future(ticker())
            await asyncio.sleep(0.01)
            found = await partner.practices.list()
            assert len(found) == 10_000
            stop = True
            await tick
            worst.append(longest[0] * 1e3)
            gap.append(gaps[0] * 1e3)
            pause.append(collecting[2] * 1e3)
    worst.sort(); gap.sort(); pause.sort()
    print(" ".join(f"{v[len(v) // 2]:.1f} {max(v):.1f}" for v in (worst, gap, pause)))

asyncio.run(main(int(sys.argv[1])))
"""

GC = r"""
import asyncio, gc, sys, time
import httpx
from intakeq_partner import PartnerClient
from bench import _data

BODY = _data.practices_body(10)

class Answers(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        await asyncio.sleep(0.005)
        return httpx.Response(200, content=BODY, headers={"Content-Type": "application/json"})

pauses = []
started = [0.0]
def track(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        pauses.append((time.perf_counter() - started[0], info["generation"]))

async def main(freeze):
    # A backend's start-up: its imports, its own long-lived state (here 100,000 small records), the client.
    state = [{"id": i, "name": f"practice {i}", "tags": [i, str(i)]} for i in range(100_000)]
    async with PartnerClient("p" * 40, base_url="https://intakeq.test", transport=Answers(), max_concurrency=2000) as p:
        await p.practices.list()
        if freeze:
            gc.collect()
            gc.freeze()
        gc.callbacks.append(track)
        start = time.perf_counter()
        for _ in range(3):
            await asyncio.gather(*(p.practices.list() for _ in range(2000)))
        wall = time.perf_counter() - start
        gc.callbacks.remove(track)
    full = [s for s, g in pauses if g == 2]
    print(f"{max(s for s, _ in pauses) * 1e3:.1f} {len(full)} {sum(s for s, _ in pauses) * 1e3:.0f} {wall:.2f}")
    assert len(state) == 100_000

asyncio.run(main(sys.argv[1] == "freeze"))
"""


def export(ref: str, into: Path) -> Path:
    """The ref's `src/` folder, unpacked under `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def child(src: Path, code: str, *args: object, timeout: float = 600) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]), PYTHONHASHSEED="0")
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode:
        raise SystemExit(f"child with {src} failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def _masking(sources: dict[str, Path], result: Result, rounds: int, quick: bool) -> None:
    helds = (0, 2000, 100_000) if not quick else (0, 2000)
    us: dict[tuple[str, int], list[float]] = {}
    for r in range(rounds):
        for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
            for held in helds:
                calls = 1500 if (name, held) != ("before", 100_000) else 40
                value = float(child(sources[name], MASKING, held, calls))
                us.setdefault((name, held), []).append(value)
    for name in ("before", "after"):
        row = ", ".join(f"{held:,} keys {median(us[name, held]):.0f} us" for held in helds)
        result.details.append(f"CPU per 404 answer, {name}: {row} (median of {rounds})")
    top = helds[-1]
    for name in ("before", "after"):
        ratio = median(us[name, top]) / median(us[name, 0])
        result.add(
            f"CPU per error answer with {top:,} keys held / with none, {name}",
            f"{ratio:.2f} ({median(us[name, 0]):.0f} -> {median(us[name, top]):.0f} us)",
            "<= 1.2" if name == "after" else "(information)",
            ratio <= 1.2 if name == "after" else None,
        )


def _revoked(sources: dict[str, Path], result: Result) -> None:
    for name in ("before", "after"):
        failed, fetches = child(sources[name], REVOKED).split()
        result.add(
            f"key revoked before first use, 200 callers of one fetch: calls failed, key fetches, {name}",
            f"{failed}, {fetches}",
            "0 failed" if name == "after" else "(information)",
            failed == "0" if name == "after" else None,
        )


def _loop(sources: dict[str, Path], result: Result, rounds: int) -> None:
    for name in ("before", "after"):
        values = [float(v) for v in child(sources[name], LOOP, 5 * rounds).split()]
        worst, worst_max, gap, gap_max, pause, pause_max = values
        result.add(
            f"10,000-practice list: longest callback (GC excluded), median (max) of {5 * rounds}, ms, {name}",
            f"{worst:.1f} ({worst_max:.1f})",
            "<= 20" if name == "after" else "(information)",
            worst <= 20 if name == "after" else None,
        )
        result.details.append(
            f"10,000-practice list, {name}: longest callback less GC {worst:.1f} ms (max {worst_max:.1f}); longest "
            f"gap a 1 ms ticker saw {gap:.1f} ms (max {gap_max:.1f}); longest collection {pause:.1f} ms "
            f"(max {pause_max:.1f}); medians of {5 * rounds} lists"
        )


def _gc(sources: dict[str, Path], result: Result) -> None:
    figures = {}
    for mode in ("plain", "freeze"):
        longest, full, total, wall = child(sources["after"], GC, mode).split()
        figures[mode] = float(longest)
        result.details.append(
            f"GC during 3 x 2,000 concurrent calls, {'gc.freeze() after start-up' if mode == 'freeze' else 'as is'}: "
            f"longest pause {longest} ms, {full} full collections, {total} ms collecting in {wall} s"
        )
    result.add(
        "longest GC pause in 2,000 concurrent calls, ms: as is / with gc.freeze() after start-up",
        f"{figures['plain']:.0f} / {figures['freeze']:.0f}",
    )


def _redis_trouble(sources: dict[str, Path], result: Result, quick: bool) -> None:
    import asyncio

    from .redis_trouble import KINDS, trouble

    for kind in KINDS[:1] if quick else KINDS:
        for name in ("before", "after"):
            outcome = asyncio.run(trouble(kind, src=sources[name]))
            result.details.append(f"Redis trouble, {name}: {outcome.line()}")
            pairs = f"{max(outcome.down_warnings)}/{max(outcome.up_warnings)}"
            result.add(
                f"Redis {kind}, 4 processes: 429s, APITimeoutErrors, most warnings down/up per process, {name}",
                f"{outcome.refused}, {outcome.timeouts}, {pairs}",
                "0, 0, <= 1/1" if name == "after" else "(information)",
                (outcome.refused == 0 and outcome.timeouts == 0 and pairs in ("1/1", "1/0"))
                if name == "after"
                else None,
            )


def _run(quick: bool) -> Result:
    started = time.perf_counter()
    result = Result("Endurance")
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-endurance-") as tmp:
        sources = {"before": export(BEFORE, Path(tmp, "before")), "after": ROOT / "src"}
        result.details.append(f"before = {BEFORE}, after = this checkout; fresh child process per figure")
        _masking(sources, result, rounds, quick)
        _revoked(sources, result)
        _loop(sources, result, rounds)
        _gc(sources, result)
        _redis_trouble(sources, result, quick)
    result.seconds = time.perf_counter() - started
    return result


def run() -> Result:
    return _run(quick=False)


def run_quick() -> Result:
    return _run(quick=True)
