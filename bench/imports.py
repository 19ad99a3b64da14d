"""Import time: `import intakeq_partner` and `intakeq-partner --help`, each in fresh processes.

The import is timed inside the process (perf_counter around the import statement), so it leaves out the
interpreter's own start; the command is timed from outside, start to exit, as a user waits for it.
Both run `rounds` times; the figure is the median and the range. aiohttp is not imported by either: it is
imported when the first client on the aiohttp stack is made.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from ._common import Result

TARGET = 0.5  # seconds
PROBE = (
    "import sys, time; t = time.perf_counter(); import intakeq_partner; "
    "print(time.perf_counter() - t, 'aiohttp' in sys.modules)"
)


def _import_seconds() -> tuple[float, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), out[1] == "True"


def _help_seconds() -> float:
    command = Path(sys.executable).with_name("intakeq-partner")
    start = time.perf_counter()
    subprocess.run([str(command), "--help"], check=True, capture_output=True)
    return time.perf_counter() - start


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})"


def run(rounds: int = 9) -> Result:
    started = time.perf_counter()
    result = Result("Import time")
    imports, helps, pulled_aiohttp = [], [], False
    for _ in range(rounds):
        seconds, aiohttp_loaded = _import_seconds()
        imports.append(seconds)
        pulled_aiohttp |= aiohttp_loaded
        helps.append(_help_seconds())
    result.add("import intakeq_partner", _spread(imports), f"< {TARGET} s", statistics.median(imports) < TARGET)
    result.add(
        "intakeq-partner --help (whole process)", _spread(helps), f"< {TARGET} s", statistics.median(helps) < TARGET
    )
    result.details += [
        f"{rounds} fresh processes each; median (min-max)",
        f"aiohttp imported by `import intakeq_partner`: {'yes' if pulled_aiohttp else 'no'}",
    ]
    result.seconds = time.perf_counter() - started
    return result


def run_quick() -> Result:
    return run(rounds=2)
