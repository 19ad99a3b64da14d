"""The test matrix: `make test` on every supported CPython this machine has. `nox -l` lists the sessions.

Each session runs the Makefile's own `make test` (drift check, ruff, ruff format, mypy --strict, the whole
suite) with its virtualenv as the Makefile's `VENV`, so the matrix cannot check less than `make test` does.

nox looks for `python3.X` on PATH. pyenv keeps its interpreters under `$(pyenv root)/versions`, and its shims on
PATH refuse to run a version that is not active, so the newest installed patch of each supported version is
put in front of PATH here. A version with no interpreter is skipped, and said so: here at start, and by nox
("Session tests-3.14 skipped: Python interpreter 3.14 not found").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

# CPython versions we support, oldest first: pyproject's classifiers name the same (tests/test_packaging.py).
SUPPORTED = ("3.11", "3.12", "3.13", "3.14")

nox.needs_version = ">=2025.5.1"  # --download-python
nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"  # the only network here is the package registries: no interpreter downloads
nox.options.error_on_missing_interpreters = False  # skip and name a missing version (nox errors on CI by default)
nox.options.sessions = [f"tests-{version}" for version in SUPPORTED]


def pyenv_versions() -> Path | None:
    """pyenv's folder of installed interpreters: $PYENV_ROOT, `pyenv root`, else ~/.pyenv."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        root = found.stdout.strip() if found.returncode == 0 else None
    versions = Path(root or Path.home() / ".pyenv") / "versions"
    return versions if versions.is_dir() else None


def _patch(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def pyenv_interpreter(version: str) -> Path | None:
    """The newest final release of `version` that pyenv has installed (3.12.1 over 3.12.0; no 3.13.0rc1, no 3.13t)."""
    versions = pyenv_versions()
    if versions is None:
        return None
    found = [
        folder / "bin" / f"python{version}"
        for folder in versions.iterdir()
        if re.fullmatch(re.escape(version) + r"\.\d+", folder.name) and (folder / "bin" / f"python{version}").is_file()
    ]
    return max(found, key=lambda exe: _patch(exe.parent.parent), default=None)


def find_interpreters() -> tuple[dict[str, str], list[str]]:
    """Each supported version's interpreter (pyenv's first, else PATH's), and the versions with none."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for version in SUPPORTED:
        exe = pyenv_interpreter(version)
        if exe is not None:
            found[version] = str(exe)
        elif (on_path := shutil.which(f"python{version}")) and "shims" not in Path(on_path).parts:
            found[version] = on_path
        else:
            missing.append(version)
    return found, missing


FOUND, MISSING = find_interpreters()
_pyenv_bins = [str(Path(exe).parent) for exe in FOUND.values() if Path(exe).parent.parent.parent == pyenv_versions()]
os.environ["PATH"] = os.pathsep.join([*_pyenv_bins, os.environ.get("PATH", "")])
nox.logger.logger.info(
    "matrix: "
    + ", ".join(f"{version} ({exe})" for version, exe in FOUND.items())
    + (f"; skipped, no interpreter on PATH or under pyenv: {', '.join(MISSING)}" if MISSING else "")
)


@nox.session(python=list(SUPPORTED))
def tests(session: nox.Session) -> None:
    """`make test` on one Python, in this session's virtualenv."""
    make = shutil.which("make")
    if make is None:
        session.error("make is needed: the session runs `make test`")
    session.run(make, "test", f"VENV={session.virtualenv.location}", external=True)
