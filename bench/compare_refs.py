"""Client CPU per call of the provisioning job on the httpx stack, at two commits, alternating runs.

`python -m bench.compare_refs [--before f254fae] [--after HEAD]`: BENCHMARKS.md's row 1b. Each ref's `src/` is
exported with `git archive` into a temporary folder and put first on the child's `PYTHONPATH`, so both run in
this venv with the same dependencies, the same fake (this checkout's, in a process of its own, fresh for every
run, answering after 20 ms) and the same plan (this checkout's `bench/_plan.py`: the refs must both accept it).
The refs alternate (before, after, then after, before, ...), and each run is a fresh process measuring its own
CPU (`getrusage`) over one `provision()` of N practices at concurrency 50, divided by the calls it makes
(7 a practice plus 2). The httpx stack is chosen with `http_stack="httpx"` (and checked) where the client has
that option; older code has only that stack. Takes about 20 s a run with 400 practices on a small machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ._fakeproc import fake_process

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

CHILD = """
import asyncio, resource, sys, time
import intakeq_partner
from intakeq_partner import PartnerClient
from intakeq_partner.provisioning import provision
from bench._plan import build_plan

assert intakeq_partner.__file__.startswith(sys.argv[4]), intakeq_partner.__file__  # the ref's code, not ours

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

async def main(url, key, n):
    stacks = hasattr(PartnerClient, "http_stack")  # older code has no choice: httpx only
    async with PartnerClient(key, base_url=url, **({"http_stack": "httpx"} if stacks else {})) as partner:
        assert not stacks or partner.http_stack == "httpx", partner.http_stack
        start = cpu()
        report = await provision(partner, build_plan(n), concurrency=50)
        used = cpu() - start
    assert report.ok, report
    print(used / (2 + 7 * n) * 1e3)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def alternate(
    refs: dict[str, str], rounds: int, measure: Callable[[Path], T], show: Callable[[T], str] | None = None
) -> dict[str, list[T]]:
    """Each ref's `src/` exported, then measured `rounds` times, the refs alternating (before, after, then after,
    before, ...) so that load on a shared machine hits both alike; each figure printed as it comes with `show`."""
    results: dict[str, list[T]] = {name: [] for name in refs}
    with tempfile.TemporaryDirectory(prefix="bench-refs-") as tmp:
        sources = {name: export(ref, Path(tmp, name)) for name, ref in refs.items()}
        for r in range(rounds):
            for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
                results[name].append(measure(sources[name]))
                if show is not None:
                    print(f"round {r + 1}, {name} ({refs[name]}): {show(results[name][-1])}", flush=True)
    return results


def export(ref: str, into: Path) -> Path:
    """The ref's `src/` folder, unpacked under `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def run(src: Path, practices: int) -> float:
    """Client CPU per call, in ms, of one provisioning run with the code in `src`."""
    with fake_process("--latency", "0.02", "--seed", "7", "--log-limit", "1000") as fake:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
        args = [fake.base_url, fake.partner_key, str(practices), str(src)]
        out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"run with {src} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_refs", description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="f254fae", help="the older ref (default: f254fae, row 1b's baseline)")
    parser.add_argument("--after", default="HEAD", help="the newer ref (default: HEAD)")
    parser.add_argument("--practices", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4, help="runs of each ref, alternating (default 4)")
    args = parser.parse_args(argv)
    refs = {"before": args.before, "after": args.after}
    results = alternate(refs, args.rounds, lambda src: run(src, args.practices), lambda ms: f"{ms:.3f} ms a call")
    for name, values in results.items():
        print(
            f"{name} ({refs[name]}): {statistics.median(values):.2f} ms a call"
            f" ({min(values):.2f}-{max(values):.2f}), {len(values)} runs of {args.practices} practices"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
