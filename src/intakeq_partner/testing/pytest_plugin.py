"""pytest fixtures for code that uses intakeq-partner, registered through the package's ``pytest11`` entry point.

``intakeq_fake`` is a fresh in-process fake IntakeQ per test; ``intakeq_client`` is a ``PartnerClient`` wired
to it. Set faults with ``intakeq_fake.faults = Faults(...)`` and inspect ``intakeq_fake.requests`` and its state.
Options for the fake go in a marker: ``@pytest.mark.intakeq_fake(seed=3, page_size=10)``.

This module imports nothing from the fake until a fixture is used, so installing the package without the
``testing`` extra leaves every other pytest run alone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from .._constants import STRICT_RESPONSES_ENV

if TYPE_CHECKING:
    from ..partner import PartnerClient
    from ._fake import FakeIntakeQ

MARKER = "intakeq_fake"


def pytest_configure(config: pytest.Config) -> None:
    # Tests read IntakeQ's answers strictly (a client's strict_responses=None follows this variable), so that a
    # change in what the fake or your own stubs send fails loudly instead of being read around. Set
    # INTAKEQ_STRICT_RESPONSES=0 to test the tolerant reading production uses, or pass strict_responses=False.
    os.environ.setdefault(STRICT_RESPONSES_ENV, "1")
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): keyword arguments for the intakeq_fake fixture's FakeIntakeQ "
        "(seed, faults, page_size, master_forms, ...)",
    )


@pytest.fixture
def intakeq_fake(request: pytest.FixtureRequest) -> FakeIntakeQ:
    """A fresh fake IntakeQ (seed 0 unless the ``intakeq_fake`` marker says otherwise)."""
    from . import FakeIntakeQ  # raises with an install hint when the testing extra is missing

    marker = request.node.get_closest_marker(MARKER)
    options = {"seed": 0, **(marker.kwargs if marker is not None else {})}
    return FakeIntakeQ(**options)


@pytest.fixture
def intakeq_client(intakeq_fake: FakeIntakeQ) -> PartnerClient:
    """A PartnerClient on ``intakeq_fake``, in-process, retrying without backoff so fault tests stay fast.

    Nothing to close: the in-process transport holds no sockets.
    """
    from ..partner import PartnerClient

    return PartnerClient(
        intakeq_fake.partner_key,
        base_url=intakeq_fake.base_url,
        transport=intakeq_fake.transport(),
        initial_delay=0.0,
        max_delay=0.0,
    )
