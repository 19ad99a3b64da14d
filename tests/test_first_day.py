"""First-day rough edges, each where a new user meets it: the fake's port, reports, connection errors, settings."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from conftest import PARTNER_KEY, STACKS

from intakeq_partner import APIConnectionError, InvalidRequestError, PartnerClient
from intakeq_partner.provisioning import ItemKind, ItemResult, ItemStatus, ProvisionReport


def test_the_fake_says_in_one_line_that_its_port_is_taken_and_how_to_pick_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "intakeq_partner.testing", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    assert f"port {port}" in done.stderr and "--port 0" in done.stderr and "Traceback" not in done.stderr


def test_report_counts_print_plain_names() -> None:
    report = ProvisionReport([ItemResult(ItemKind.PRACTICE, "p", "p", ItemStatus.CREATED)])
    assert str(report.counts) == "{'created': 1, 'updated': 0, 'unchanged': 0, 'failed': 0, 'skipped': 0}"
    assert report.counts[ItemStatus.CREATED] == 1 and next(iter(report.counts)) == "created"  # enums, shown plainly
    assert repr(ItemKind.FORM) == "'form'"


@pytest.mark.parametrize("stack", STACKS)
async def test_a_refused_plain_http_connection_is_not_said_to_be_tls(stack: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    base_url = f"http://127.0.0.1:{port}"
    async with PartnerClient(PARTNER_KEY, base_url=base_url, http_stack=stack, max_retries=0) as partner:  # type: ignore[arg-type]
        with pytest.raises(APIConnectionError) as caught:
            await partner.forms.master()
    assert "ssl" not in str(caught.value).lower()
    if stack == "aiohttp":
        assert f"cannot connect to {base_url}" in str(caught.value)


@pytest.mark.parametrize("value", ["ftp://example.com", "http://example.com", "not a url at all://"])
def test_a_bad_base_url_from_the_environment_names_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKEQ_BASE_URL", value)
    with pytest.raises(InvalidRequestError, match=r"^\$INTAKEQ_BASE_URL "):
        PartnerClient(PARTNER_KEY)
    with pytest.raises(InvalidRequestError, match=r"^base_url "):
        PartnerClient(PARTNER_KEY, base_url=value)
