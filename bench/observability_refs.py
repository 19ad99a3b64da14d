"""What a no-op hook adds to a call's client CPU, at two commits, alternating runs (BENCHMARKS.md, row 12).

`python -m bench.observability_refs [--before daff7d5] [--after HEAD]`: each ref's `src/` is exported with
`git archive` (as `compare_refs` does) and run in a fresh process of this venv's Python. A process makes one
client on canned in-memory answers (the client's own CPU alone) and lets calls with nothing listening and calls
through a `with_options(hooks=[no-op])` view take turns, batch by batch, at concurrency 20; it prints the mean
over its batches of what the hook added (user CPU per call). The refs alternate (before, after, then after,
before, ...), so load on a shared machine hits both alike; medians and ranges over the runs.

`--instructions` counts instead of timing, free of the machine's load (valgrind's cachegrind, which must be
installed): what a no-op hook hearing every event, and one for `CallFinished` only, add to a call in
instructions and in first-level instruction and data cache misses, each the difference of two runs of the same
variant (with and without `--calls` calls after a warm-up), the hash seed fixed. About two minutes a ref. On a
shared machine CPU figures for one run swing by about 1% of a call; these do not.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .compare_refs import alternate, export

# What both children start with: the ref's client, answers canned in memory, a no-op hook.
PRELUDE = """
import asyncio, gc, resource, sys
import httpx
import intakeq_partner
from intakeq_partner import PartnerClient

assert intakeq_partner.__file__.startswith(sys.argv[1]), intakeq_partner.__file__  # the ref's code, not ours


class Canned(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        headers = [("date", "Wed, 02 Dec 2026 12:00:00 GMT"), ("server", "uvicorn"), ("content-length", "2")]
        return httpx.Response(200, headers=[*headers, ("content-type", "application/json")], content=b"[]")


def noop(event):
    return None
"""

CHILD = (
    PRELUDE
    + """

def user_cpu():
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


async def main(batches, batch=1000, concurrency=20):
    async with PartnerClient("k" * 32, base_url="http://127.0.0.1:1", transport=Canned()) as plain:
        hooked = plain.with_options(hooks=[noop])

        async def calls(client, count):
            pending = iter(range(count))

            async def worker():
                for _ in pending:
                    await client.forms.master()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await calls(plain, 2000)
        await calls(hooked, 2000)
        added = []
        for number in range(batches):
            spent = {}
            for name, client in (("plain", plain), ("hooked", hooked))[:: 1 if number % 2 == 0 else -1]:
                gc.collect()
                started = user_cpu()
                await calls(client, batch)
                spent[name] = (user_cpu() - started) / batch
            added.append(spent["hooked"] - spent["plain"])
        print(sum(added) / len(added) * 1e6)


asyncio.run(main(int(sys.argv[2])))
"""
)


COUNTED = (
    PRELUDE
    + """
from intakeq_partner import CallFinished, hook_for


async def main(variant, count, concurrency=20):
    async with PartnerClient("k" * 32, base_url="http://127.0.0.1:1", transport=Canned()) as plain:
        hooks = {"plain": None, "every event": [noop], "CallFinished only": [hook_for(CallFinished)(noop)]}[variant]
        client = plain if hooks is None else plain.with_options(hooks=hooks)

        async def calls(n):
            pending = iter(range(n))

            async def worker():
                for _ in pending:
                    await client.forms.master()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await calls(500 + count)


asyncio.run(main(sys.argv[2], int(sys.argv[3])))
"""
)
COUNTS = ("instructions", "I1 misses", "D1 misses")


def counted(src: Path, variant: str, calls: int) -> dict[str, int]:
    """Instructions and cache misses (cachegrind's totals) of one process making 500 + `calls` calls."""
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--cachegrind-out-file=/dev/null"]
    out = subprocess.run(
        [*command, sys.executable, "-c", COUNTED, str(src), variant, str(calls)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"counting {variant} with {src} failed:\n{out.stderr[-2000:]}")
    totals = {}
    for name, label in zip(COUNTS, ("I +refs", "I1 +misses", "D1 +misses"), strict=True):
        found = re.search(rf"== {label}:\s+([\d,]+)", out.stderr)
        if found is None:
            raise SystemExit(f"no {label} in cachegrind's summary:\n{out.stderr[-2000:]}")
        totals[name] = int(found.group(1).replace(",", ""))
    return totals


def count(src: Path, calls: int) -> dict[str, dict[str, float]]:
    """What each hook adds to a call, in instructions and cache misses, with the code in `src`."""
    per_call = {}
    for variant in ("plain", "every event", "CallFinished only"):
        more, less = counted(src, variant, calls), counted(src, variant, 0)
        per_call[variant] = {name: (more[name] - less[name]) / calls for name in COUNTS}
    return {
        variant: {name: per_call[variant][name] - per_call["plain"][name] for name in COUNTS}
        for variant in ("every event", "CallFinished only")
    }


def run(src: Path, batches: int) -> float:
    """Microseconds of user CPU a no-op hook adds to a call, with the code in `src`."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(batches)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"run with {src} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.observability_refs", description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="daff7d5", help="the older ref (default: daff7d5)")
    parser.add_argument("--after", default="HEAD", help="the newer ref (default: HEAD)")
    parser.add_argument("--batches", type=int, default=16, help="batches of 1,000 calls a run, each way")
    parser.add_argument("--rounds", type=int, default=8, help="runs of each ref, alternating (default 8)")
    parser.add_argument("--instructions", action="store_true", help="count with cachegrind instead of timing")
    parser.add_argument("--calls", type=int, default=4000, help="calls counted a run, with --instructions")
    args = parser.parse_args(argv)
    refs = {"before": args.before, "after": args.after}
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (its cachegrind tool) on PATH")
        with tempfile.TemporaryDirectory(prefix="bench-refs-") as tmp:
            for name, ref in refs.items():
                for variant, added in count(export(ref, Path(tmp, name)), args.calls).items():
                    figures = ", ".join(f"{added[n]:,.0f} {n}" for n in COUNTS)
                    print(f"{name} ({ref}): a no-op hook for {variant} adds {figures} a call", flush=True)
        return 0
    results = alternate(refs, args.rounds, lambda src: run(src, args.batches), lambda us: f"{us:.2f} us a call")
    for name, values in results.items():
        print(
            f"{name} ({refs[name]}): a no-op hook adds {statistics.median(values):.2f} us a call"
            f" ({min(values):.2f}-{max(values):.2f}), {len(values)} runs of {args.batches} x 1,000 calls each way"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
