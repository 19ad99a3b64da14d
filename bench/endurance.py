"""Endurance: what a backend meets after weeks (issue 18), each figure measured at fcd877f and at this checkout,
side by side in one run, each in fresh child processes that import the code under test.

- masking: client CPU per error answer (a 404 with a short JSON body, through `PracticeClient` on a transport
  that answers in-process) with 0, 2,000 and 100,000 other keys held. Target: within 1.2x of 0 keys at 100,000.
- event loop: the longest the loop is blocked in one callback while a 10,000-practice list is read and decoded
  (asyncio debug mode's slow-callback report, threshold 0), and the longest gap a 1 ms ticker sees. Target 20 ms.
- GC: the longest collection pause (gc.callbacks) during 2,000 concurrent calls, with and without gc.freeze()
  after start-up (information: what README's advice rests on).
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
                calls = 400 if (name, held) != ("before", 100_000) else 40
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


def _run(quick: bool) -> Result:
    started = time.perf_counter()
    result = Result("Endurance")
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="bench-endurance-") as tmp:
        sources = {"before": export(BEFORE, Path(tmp, "before")), "after": ROOT / "src"}
        result.details.append(f"before = {BEFORE}, after = this checkout; fresh child process per figure")
        _masking(sources, result, rounds, quick)
    result.seconds = time.perf_counter() - started
    return result


def run() -> Result:
    return _run(quick=False)


def run_quick() -> Result:
    return _run(quick=True)
