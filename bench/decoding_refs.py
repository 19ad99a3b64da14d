"""Decoding at two commits, side by side: `python -m bench.decoding_refs [--before fcd877f] [--after HEAD]`.

Each ref's `src/` is exported with `git archive` (as `bench.compare_refs` does) and imported in a fresh child
process, which times `structure_list` on the same well-formed bodies (this checkout's `bench/_data.py`: 10,000
practices and 1,000 intakes, parsed with orjson), 15 rounds each, median. The newer ref is timed twice: strict
(`strict=True`, what tests run) and tolerant (`strict=False`, what clients do by default); a ref without the
tolerant reading has one path. Refs alternate run by run (before, after, after, before, ...), so load on a
shared machine falls on both. The requirement: the tolerant path costs a well-formed answer at most 10% more
than the decoding before it existed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from .compare_refs import ROOT, alternate

LIMIT = 1.10  # tolerant (after) / before, on well-formed answers

CHILD = """
import inspect, json, statistics, sys, time
import orjson
from intakeq_partner import _wire
from intakeq_partner._generated.models import Intake, Practice
from bench import _data

assert _wire.__file__.startswith(sys.argv[1]), _wire.__file__  # the ref's code, not ours
two_ways = "strict" in inspect.signature(_wire.structure_list).parameters
modes = {"strict": True, "tolerant": False} if two_ways else {"only": None}
bodies = (("practices", Practice, _data.practices_body(10_000)), ("intakes", Intake, _data.intakes_body(1_000)))
out = {}
for label, model, body in bodies:
    for mode, strict in modes.items():
        if strict is None:
            decode = lambda d: _wire.structure_list(model, d)
        else:
            decode = lambda d: _wire.structure_list(model, d, strict=strict)
        decode(orjson.loads(body))  # compile the decoders
        times = []
        for _ in range(15):
            data = orjson.loads(body)
            start = time.perf_counter()
            decode(data)
            times.append(time.perf_counter() - start)
        out[f"{label} {mode}"] = statistics.median(times)
print(json.dumps(out))
"""


def run(src: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", CHILD, str(src)], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"run with {src} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decoding_refs", description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="fcd877f", help="the older ref (default: fcd877f, before issue 17)")
    parser.add_argument("--after", default="HEAD", help="the newer ref (default: HEAD)")
    parser.add_argument("--rounds", type=int, default=6, help="runs of each ref, alternating (default 6)")
    args = parser.parse_args(argv)
    refs = {"before": args.before, "after": args.after}
    runs = alternate(refs, args.rounds, run)
    ok = True
    for label in ("practices", "intakes"):
        before = [run_[f"{label} only"] for run_ in runs["before"]]
        print(f"{label}: before ({refs['before']}) {statistics.median(before) * 1e3:.2f} ms")
        for mode in ("strict", "tolerant"):
            after = [run_[f"{label} {mode}"] for run_ in runs["after"]]
            ratio = statistics.median([a / b for a, b in zip(after, before, strict=True)])
            print(f"  after ({refs['after']}) {mode}: {statistics.median(after) * 1e3:.2f} ms, {ratio:.3f}x before")
            ok = ok and (mode == "strict" or ratio <= LIMIT)
    print(f"tolerant / before <= {LIMIT}: {'met' if ok else 'NOT met'} ({args.rounds} runs of each ref, alternating)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
