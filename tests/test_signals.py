"""A supervisor's SIGTERM (and Ctrl-C's SIGINT) stops `intakeq-partner provision` cleanly: a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import PARTNER_KEY, Served

from intakeq_partner.testing import FakeIntakeQ, Faults

CLI = "import sys; from intakeq_partner.cli import main; sys.exit(main())"


def write_plan(folder: Path, practices: int) -> Path:
    blocks = []
    for n in range(practices):
        blocks.append(
            f"""
[[practices]]
external_practice_id = "sig-{n}"
practice_name = "Practice {n}"
first_name = "Ann"
last_name = "Lee"
email = "ann@sig-{n}.example.com"

[[practices.practitioners]]
external_practitioner_id = "sig-{n}-dr"
first_name = "Bo"
last_name = "Ek"
email = "bo@sig-{n}.example.com"
"""
        )
    path = folder / "plan.toml"
    path.write_text("".join(blocks), encoding="utf-8")
    return path


def start(served: Served, plan: Path, report: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "INTAKEQ_PARTNER_KEY": PARTNER_KEY, "INTAKEQ_BASE_URL": served.url}
    command = [sys.executable, "-c", CLI, "provision", str(plan), "--plain", "--report", str(report), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    while not condition():
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)


def test_sigterm_lets_practices_under_way_finish_writes_the_report_and_exits_143(tmp_path: Path) -> None:
    fake = FakeIntakeQ(PARTNER_KEY, faults=Faults(latency=0.1))
    plan, report = write_plan(tmp_path, 8), tmp_path / "report.json"
    with Served(fake) as served:
        process = start(served, plan, report, "--concurrency", "2")
        wait_for(lambda: any(r.method == "POST" for r in fake.requests), process)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "SIGTERM" in err and "run the same plan again" in err
    data = json.loads(report.read_text())
    assert data["elapsed_seconds"] > 0
    started = {p.external_id for p in fake.practices}
    by_practice: dict[str, set[str]] = {}
    for item in data["items"]:
        by_practice.setdefault(item["practice"], set()).add(item["status"])
    assert len(data["items"]) == 8 * 2 and len(by_practice) == 8  # every plan item once
    assert 1 <= len(started) < 8  # stopped before the end...
    for practice, statuses in by_practice.items():
        if practice in started:  # ...and what was under way finished: both of its writes are there
            assert "skipped" not in statuses and len(fake.practitioners(practice)) == 2
        else:
            assert statuses == {"skipped"}


def test_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    fake = FakeIntakeQ(PARTNER_KEY, faults=Faults(p_hang=1.0, hang_seconds=600))
    plan, report = write_plan(tmp_path, 3), tmp_path / "report.json"
    with Served(fake) as served:
        process = start(served, plan, report, "--grace", "600")
        wait_for(lambda: fake.stats.faults["hang"] >= 1, process)  # its first request hangs (for ten minutes)
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        assert process.stderr.readline().startswith("SIGINT: starting nothing new")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)  # far less than the hang, the grace or attempt_timeout
    assert process.returncode == 130, err
    data = json.loads(report.read_text())
    assert data["elapsed_seconds"] > 0 and {i["status"] for i in data["items"]} == {"skipped"}
