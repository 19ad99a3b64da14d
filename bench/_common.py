"""What every benchmark shares: results, medians, the stock baseline, the machine's description."""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import importlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STOCK_PACKAGE = "iq_stock"


@dataclass
class Figure:
    """One reported number, with its target and whether it was met (None: no target, for information)."""

    name: str
    value: str
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Result:
    """What one benchmark found: the headline figures and the detail lines behind them."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, name: str, value: str, target: str = "", met: bool | None = None, note: str = "") -> None:
        self.figures.append(Figure(name, value, target, met, note))


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes, with a collection beforehand so garbage from others is not billed."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def stock_client() -> Iterator[ModuleType]:
    """Generate the stock openapi-python-client package into a temporary folder and import it.

    It is the baseline a user of the generator would start from; it is never committed.
    """
    with tempfile.TemporaryDirectory(prefix="intakeq-stock-") as tmp:
        target = Path(tmp) / STOCK_PACKAGE
        subprocess.run(
            [sys.executable, "-m", "generator", "--stock", str(target)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        sys.path.insert(0, tmp)
        try:
            package = importlib.import_module(STOCK_PACKAGE)
            importlib.import_module(f"{STOCK_PACKAGE}.models")
            yield package
        finally:
            sys.path.remove(tmp)
            for name in [n for n in sys.modules if n == STOCK_PACKAGE or n.startswith(STOCK_PACKAGE + ".")]:
                del sys.modules[name]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """The description BENCHMARKS.md carries next to the numbers."""
    versions = []
    names = ("httpx", "httpcore", "h11", "aiohttp", "yarl", "attrs", "cattrs", "orjson", "uvicorn", "starlette")
    for name in (*names, "redis", "limits"):
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    try:
        generator = importlib.metadata.version("openapi-python-client")
    except importlib.metadata.PackageNotFoundError:
        generator = "not installed"
    return {
        "CPU": cpu_model(),
        "Cores": str(os.cpu_count()),
        "Memory": _memory_total(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Packages": ", ".join(versions),
        "Baseline": f"openapi-python-client {generator} (stock templates)",
        "Date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    return "unknown"


def rss_mb() -> float:
    """Current resident set size of this process in MB (Linux), from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not available")
