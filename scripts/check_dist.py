"""`make dist`'s last step: the built sdist and wheel hold what they should, and the wheel works once installed.

For the wheel alone and for the wheel with each extra, in a fresh venv outside the repository: the package
imports from that venv (not from src/), `intakeq-partner --version` prints the version, and the README's tour
(its ```python blocks under "A five-minute tour") runs as written against a fake IntakeQ started from that
venv, as does one command of the CLI. The wheel alone cannot start a fake (that is the `testing` extra): it
must say so, and it runs the tour against the fake of the `testing` venv.

Usage: python scripts/check_dist.py DIST_DIR    (DIST_DIR holds one .tar.gz and one .whl)
"""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "intakeq_partner"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Extras a user installs; `dev` is the repository's own tooling and names the project itself.
EXTRAS = [extra for extra in PROJECT["optional-dependencies"] if extra != "dev"]
PARTNER_KEY = "check-dist-partner-key"


def fail(message: str) -> None:
    raise SystemExit(f"check_dist: {message}")


def version() -> str:
    found = re.search(r'^VERSION = "([^"]+)"', (ROOT / "src" / PACKAGE / "_constants.py").read_text(), re.M)
    assert found
    return found.group(1)


def check_wheel(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    info = f"intakeq_partner-{version()}.dist-info"
    outside = [n for n in names if not n.startswith((f"{PACKAGE}/", f"{info}/"))]
    if outside:
        fail(f"{wheel.name} holds files outside the package: {outside[:5]}")
    for needed in (f"{PACKAGE}/py.typed", f"{PACKAGE}/testing/__init__.py", f"{info}/licenses/LICENSE"):
        if needed not in names:
            fail(f"{wheel.name} lacks {needed}")
    if any("/tests/" in n or n.endswith((".pyc", ".orig", ".rej")) for n in names):
        fail(f"{wheel.name} holds tests or stray files")
    meta = email.parser.Parser().parsestr(zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode())
    expected = {
        "Name": "intakeq-partner",
        "Version": version(),
        "License-Expression": "MIT",
        "Requires-Python": ">=3.11",
    }
    for field, value in expected.items():
        if meta[field] != value:
            fail(f"{wheel.name}: {field} is {meta[field]!r}, not {value!r}")
    if "Typing :: Typed" not in meta.get_all("Classifier", []):
        fail(f"{wheel.name}: no Typing :: Typed classifier")
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    if "intakeq-partner = intakeq_partner.cli:main" not in entry_points or "[pytest11]" not in entry_points:
        fail(f"{wheel.name}: the console script or the pytest plugin entry point is missing")
    print(f"check_dist: {wheel.name}: {len(names)} files, metadata and entry points as expected")


def check_sdist(sdist: Path) -> None:
    top = f"intakeq_partner-{version()}"
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for needed in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", f"src/{PACKAGE}/py.typed"):
        if f"{top}/{needed}" not in names:
            fail(f"{sdist.name} lacks {needed}")
    print(f"check_dist: {sdist.name}: {len(names)} entries, LICENSE, README, CHANGELOG and py.typed included")


def tour() -> str:
    """The README's tour: its python blocks, from "## A five-minute tour" to the next "## " heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    if not blocks:
        fail("README.md's tour has no python block")
    return "\n\n".join(blocks)


def make_venv(where: Path, wheel: Path, extras: list[str]) -> Path:
    venv.create(where, with_pip=True, clear=True)
    python = where / "bin" / "python"
    requirement = f"{PACKAGE}[{','.join(extras)}] @ {wheel.resolve().as_uri()}" if extras else str(wheel.resolve())
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement], cwd=where)
    return python


def run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        fail(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def fake_from(python: Path, cwd: Path) -> Iterator[str]:
    """A fake IntakeQ started by this venv's python on a free loopback port; yields its URL."""
    server = subprocess.Popen(
        [
            python,
            "-m",
            "intakeq_partner.testing",
            "--port",
            "0",
            "--partner-key",
            PARTNER_KEY,
            "--log-level",
            "warning",
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("export INTAKEQ_BASE_URL="):
                yield line.split("=", 1)[1].strip()
                return
        fail(f"the fake of {python} exited {server.wait()} without printing its URL")
    finally:
        server.terminate()
        server.wait(timeout=30)


STACK = """
import asyncio
from intakeq_partner import PartnerClient
async def main() -> None:
    async with PartnerClient() as partner:
        print(partner.http_stack)
asyncio.run(main())
"""


def check_installed(python: Path, work: Path, url: str, label: str, stack: str) -> None:
    env = {**os.environ, "INTAKEQ_PARTNER_KEY": PARTNER_KEY, "INTAKEQ_BASE_URL": url}
    env.pop("PYTHONPATH", None)
    where = run([python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__, {PACKAGE}.__version__)"], work, env)
    path, installed = where.split()
    if not path.startswith(str(python.parent.parent)) or installed != version():
        fail(f"{label}: imported {installed} from {path}, not {version()} from the venv")
    cli = python.parent / "intakeq-partner"
    printed = run([cli, "--version"], work, env).strip()
    if printed != f"intakeq-partner {version()}":
        fail(f"{label}: --version printed {printed!r}")
    script = work / "tour.py"
    script.write_text(tour(), encoding="utf-8")
    out = run([python, str(script)], work, env)
    if "send the client to" not in out or "redirect Dana to" not in out:
        fail(f"{label}: the tour printed\n{out}")
    listed = run([cli, "practices", "list", "--json"], work, env)
    if "lee-therapy" not in listed:
        fail(f"{label}: `intakeq-partner practices list --json` does not list the tour's practice:\n{listed}")
    used = run([python, "-c", STACK], work, env).strip()
    if used != stack:
        fail(f"{label}: the client sends with {used}, not {stack}")
    print(f"check_dist: {label}: imports from its venv; --version; the README tour and the CLI over {stack}")


def main(argv: list[str]) -> int:
    dist = Path(argv[1] if len(argv) > 1 else ROOT / "dist")
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    check_wheel(wheel)
    check_sdist(sdist)
    with tempfile.TemporaryDirectory(prefix="check-dist-") as tmp:
        work = Path(tmp)
        testing = make_venv(work / "testing", wheel, ["testing"])
        core = make_venv(work / "core", wheel, [])
        # The wheel alone: no fake of its own, and it says which extra brings one.
        refused = subprocess.run(
            [core, "-m", "intakeq_partner.testing", "--port", "0"], capture_output=True, text=True, check=False
        )
        if refused.returncode != 2 or "intakeq-partner[testing]" not in refused.stderr:
            fail(f"the wheel alone: the fake server did not name the testing extra:\n{refused.stderr}")
        with fake_from(testing, work) as url:
            check_installed(core, work, url, "the wheel alone (against the testing venv's fake)", "httpx")
        for extra in EXTRAS:
            python = testing if extra == "testing" else make_venv(work / extra, wheel, [extra, "testing"])
            with fake_from(python, work) as url:
                stack = "aiohttp" if extra == "fast" else "httpx"
                check_installed(
                    python, work, url, f"the wheel with [{','.join(dict.fromkeys([extra, 'testing']))}]", stack
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
