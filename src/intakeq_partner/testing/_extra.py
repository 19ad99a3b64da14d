"""Whether the `testing` extra (starlette, uvicorn) is installed, checked without importing it."""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'intakeq-partner[testing]'"


def missing_packages() -> list[str]:
    """The fake's own dependencies that are not installed (empty when the extra is)."""
    return [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]


def require_testing_extra() -> None:
    """Raise a ModuleNotFoundError that says how to install what is missing."""
    missing = missing_packages()
    if missing:
        raise ModuleNotFoundError(
            f"the fake IntakeQ server needs {' and '.join(missing)}, from the testing extra: {INSTALL_HINT}",
            name=missing[0],
        )
