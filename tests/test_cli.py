"""The `intakeq-partner` command, run in-process against the fake served over loopback in a background thread."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Served

from intakeq_partner import __version__, cli
from intakeq_partner import _constants as constants
from intakeq_partner.testing import FakeIntakeQ, Faults

WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with Served(FakeIntakeQ(seed=3)) as server:
        monkeypatch.setenv("INTAKEQ_PARTNER_KEY", server.fake.partner_key)
        monkeypatch.setenv("INTAKEQ_BASE_URL", server.url)
        monkeypatch.delenv("INTAKEQ_SSO_HOST", raising=False)
        yield server


def writes(fake: FakeIntakeQ) -> int:
    return sum(n for (method, _), n in fake.stats.calls.items() if method in WRITES)


def plan_file(tmp_path: Path, n: int = 3, *, role: str = "Practitioner", name: str = "plan.json") -> Path:
    practices: list[dict[str, Any]] = [
        {
            "external_practice_id": f"ext-{i}",
            "practice_name": f"Practice {i}",
            "first_name": "Ann",
            "last_name": "Lee",
            "email": f"ann{i}@example.com",
            "external_practitioner_id": f"main-{i}",
            "practitioners": [
                {
                    "external_practitioner_id": "dr-1",
                    "first_name": "Bo",
                    "last_name": "Kim",
                    "email": "bo@x.io",
                    "role_name": role,
                }
            ],
            "assistants": [
                {
                    "external_assistant_id": "desk",
                    "name": "Cy",
                    "email": "cy@x.io",
                    "practitioner_ids": ["dr-1", f"main-{i}"],
                }
            ],
        }
        for i in range(n)
    ]
    path = tmp_path / name
    path.write_text(json.dumps({"defaults": {"forms": ["Intake Form"]}, "practices": practices}), encoding="utf-8")
    return path


def test_provision_converges_writes_a_report_and_exits_0(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out.json"
    assert cli.main(["provision", str(plan_file(tmp_path)), "--report", str(report), "--concurrency", "2"]) == 0
    data = json.loads(report.read_text())
    assert data["ok"] is True and data["counts"]["created"] == 12 and len(data["items"]) == 12
    assert len(served.fake.practices) == 3
    out = capsys.readouterr()
    assert "converged" in out.out and "practices" in out.out
    assert served.fake.partner_key not in out.out + out.err

    served.fake.reset_stats()
    assert cli.main(["provision", str(plan_file(tmp_path)), "--report", str(report), "--plain"]) == 0
    assert writes(served.fake) == 0
    assert json.loads(report.read_text())["counts"]["unchanged"] == 12


def test_provision_exits_1_when_items_fail(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "out.json"
    code = cli.main(["provision", str(plan_file(tmp_path, role="Astronaut")), "--report", str(report)])
    assert code == 1
    data = json.loads(report.read_text())
    assert data["ok"] is False
    assert data["counts"]["failed"] == 3 and data["counts"]["skipped"] == 3
    failed = next(item for item in data["items"] if item["status"] == "failed")
    assert failed["kind"] == "practitioner" and "400" in failed["reason"]
    assert "not converged" in capsys.readouterr().out


def test_an_unwritable_report_is_a_clean_error_not_a_traceback(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A folder given as the report file is refused before any call.
    assert cli.main(["provision", str(plan_file(tmp_path)), "--report", str(tmp_path), "--plain"]) == 2
    assert "--report" in capsys.readouterr().err and writes(served.fake) == 0
    # A report that cannot be written after the run: the error is named, the exit code says so.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # parent is a file: caught by the folder check (exit 2), nothing written
    assert cli.main(["provision", str(plan_file(tmp_path)), "--report", str(blocker / "r.json")]) == 2
    locked = tmp_path / "locked"
    locked.mkdir()
    target = locked / "r.json"
    real_write = Path.write_text

    def refuse(self: Path, *args: Any, **kwargs: Any) -> int:
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "write_text", refuse)
        code = cli.main(["provision", str(plan_file(tmp_path)), "--report", str(target), "--plain"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot write the report" in err and "Traceback" not in err


def test_an_interrupt_writes_a_report_listing_every_item_once(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "out.json"
    report.write_text(json.dumps({"ok": True, "items": []}))  # an older run's report must not survive as this one's
    real = cli.provision  # type: ignore[attr-defined]

    async def interrupted(*args: Any, on_progress: Any, **kwargs: Any) -> Any:
        def on_item(item: Any) -> None:
            on_progress(item)
            if item.kind == "assistant":
                raise KeyboardInterrupt

        return await real(*args, on_progress=on_item, **kwargs)

    monkeypatch.setattr(cli, "provision", interrupted)
    code = cli.main(["provision", str(plan_file(tmp_path)), "--report", str(report), "--plain", "--concurrency", "1"])
    assert code == 130
    data = json.loads(report.read_text())
    assert data["ok"] is False
    keys = [(i["practice"], i["kind"], i["key"]) for i in data["items"]]
    assert len(keys) == len(set(keys)) == 12
    assert data["counts"]["skipped"] >= 9 and all(
        i["reason"] == "interrupted" for i in data["items"] if i["status"] == "skipped"
    )
    assert "interrupted" in capsys.readouterr().err


def test_a_bad_plan_exits_2_before_any_call(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[[practices]]
external_practice_id = "a"
practice_name = "A"
first_name = "B"
email = 42

[[practices]]
external_practice_id = "a"
practice_name = "A2"
first_name = "B"
last_name = "C"
email = "x@y.z"
""",
        encoding="utf-8",
    )
    assert cli.main(["provision", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: practices[0] (a): last_name: required field is missing" in err
    assert f"{path}: practices[0] (a): email: must be a string, not an integer" in err
    assert f"{path}: practices[1] (a): external_practice_id: duplicate practice external ID" in err
    assert served.fake.requests == []


def test_an_unknown_master_form_exits_2_with_no_writes(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plan_file(tmp_path)
    path.write_text(path.read_text().replace('"Intake Form"', '"Intake Formm"'), encoding="utf-8")
    assert cli.main(["provision", str(path)]) == 2
    assert "defaults.forms[0]: 'Intake Formm' is not a master form" in capsys.readouterr().err
    assert writes(served.fake) == 0


def test_dry_run_writes_nothing(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "dry.json"
    assert cli.main(["provision", str(plan_file(tmp_path)), "--dry-run", "--report", str(report)]) == 0
    assert writes(served.fake) == 0 and not served.fake.practices
    data = json.loads(report.read_text())
    assert data["dry_run"] is True and data["counts"]["created"] == 12
    assert "would create" in capsys.readouterr().out


def test_usage_errors_exit_2(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main([]) == 2
    assert cli.main(["provision"]) == 2
    assert cli.main(["provision", str(plan_file(tmp_path)), "--concurrency", "0"]) == 2
    assert cli.main(["provision", str(tmp_path / "missing.toml")]) == 2
    assert cli.main(["provision", str(plan_file(tmp_path)), "--report", str(tmp_path / "no" / "r.json")]) == 2
    monkeypatch.delenv("INTAKEQ_PARTNER_KEY")
    assert cli.main(["provision", str(plan_file(tmp_path))]) == 2
    assert cli.main(["--help"]) == 0


def test_practices_list_and_sso_url(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["provision", str(plan_file(tmp_path, 2)), "--plain"]) == 0
    capsys.readouterr()
    assert cli.main(["practices", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["external_practice_id"] for p in listed] == ["ext-0", "ext-1"]
    assert cli.main(["practices", "list"]) == 0
    assert "ext-1" in capsys.readouterr().out

    assert cli.main(["sso-url", "ext-1", "--user", "dr-1", "--path", "settings"]) == 0
    out = capsys.readouterr()
    url = out.out.strip()
    dr = served.fake.practitioner("ext-1", "dr-1")
    assert url.startswith(f"{served.url}/signin/authenticate?token=") and f"userId={dr.id}" in url
    assert url.endswith("&path=settings")
    assert served.fake.partner_key not in out.out + out.err
    assert cli.main(["sso-url", "ext-1", "--host", "http://forms.example.com"]) == 2  # plain http off loopback


def test_the_console_script_runs_as_a_process(served: Served, tmp_path: Path) -> None:
    env = dict(os.environ, INTAKEQ_PARTNER_KEY=served.fake.partner_key, INTAKEQ_BASE_URL=served.url)
    done = subprocess.run(
        [sys.executable, "-m", "intakeq_partner.cli", "provision", str(plan_file(tmp_path, 2)), "--plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "converged: 8 items" in done.stdout
    assert served.fake.partner_key not in done.stdout + done.stderr


def test_fake_server_help_is_the_fake_runner(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fake-server", "--help"]) == 0
    assert "--p429" in capsys.readouterr().out


def test_plain_output_without_rich(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_rich_available", lambda: False)
    assert cli.main(["provision", str(plan_file(tmp_path, 2))]) == 0
    out = capsys.readouterr().out
    assert "Provisioning: 8/8 items" in out and "converged: 8 items" in out
    assert "┃" not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"intakeq-partner {__version__}"


def test_a_refused_key_names_the_variables_to_check_and_leaves_no_empty_progress_bar(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKEQ_PARTNER_KEY", "not-the-partner-key")
    assert cli.main(["provision", str(plan_file(tmp_path, 2))]) == 1
    out = capsys.readouterr()
    assert "401" in out.err and "$INTAKEQ_PARTNER_KEY" in out.err and "$INTAKEQ_BASE_URL" in out.err
    assert served.url in out.err  # where the refusal came from
    assert out.out == ""  # no progress bar at 0/8 above the error


def test_max_retries_reaches_the_client(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served.fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))
    assert cli.main(["provision", str(plan_file(tmp_path, 1)), "--max-retries", "0"]) == 1
    # Counted as the answer is sent (the request log is written after it, in the server's thread).
    assert served.fake.stats.statuses == {503: 1}  # the default would have tried three times
    assert cli.main(["provision", str(plan_file(tmp_path, 1)), "--max-retries", "-1"]) == 2
    assert "--max-retries" in capsys.readouterr().err


def test_every_environment_variable_the_command_reads_is_in_its_help_and_the_readme(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = Path(cli.__file__).read_text(encoding="utf-8")
    read = {getattr(cli, name) for name in re.findall(r"os\.environ\.get\((\w+)\)", source)}
    # ... and what the PartnerClient it makes reads (a PracticeClient's own key is not the command's business).
    read |= {value for name, value in vars(constants).items() if name.endswith("_ENV") and name != "PRACTICE_KEY_ENV"}
    assert read and read == set(cli.ENVIRONMENT)
    assert cli.main(["--help"]) == 0
    helptext = capsys.readouterr().out
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name in cli.ENVIRONMENT:
        assert name in helptext and f"`{name}`" in readme


def test_per_key_rates_keep_a_rate_limited_server_from_refusing(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served.fake.faults = Faults(rate_limit=3)  # per key, a sliding second
    plan = str(plan_file(tmp_path, 2))
    assert cli.main(["provision", plan, "--plain", "--rate", "3/s", "--practice-rate", "3/s"]) == 0
    assert served.fake.stats.statuses[429] == 0
    assert {record.auth.split(":")[0] for record in served.fake.requests} == {"partner", "practice"}


def test_bad_budget_options_exit_2_and_an_unreachable_redis_chosen_to_fail_exits_1(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = str(plan_file(tmp_path, 1))
    assert cli.main(["provision", plan, "--rate", "ten a minute"]) == 2
    assert "--rate" in capsys.readouterr().err
    assert cli.main(["practices", "list", "--redis-url", "http://127.0.0.1:1"]) == 2
    assert "redis_url" in capsys.readouterr().err
    assert cli.main(["practices", "list", "--redis-url", "redis://:hunter2@127.0.0.1:abc/0"]) == 2
    err = capsys.readouterr().err
    assert "redis_url" in err and "hunter2" not in err and "Traceback" not in err
    # Port 1 on loopback refuses at once: nothing may be sent without the shared budget.
    monkeypatch.setenv("INTAKEQ_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    assert cli.main(["practices", "list", "--on-redis-error", "fail"]) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1:1" in err and "hunter2" not in err
    assert served.fake.stats.logged == 0


VAULT = '''
import json, pathlib

FILE = pathlib.Path(__file__).with_name("vault.json")
NUMBER = 42


class Vault:
    """The user's store: a JSON file here (a real one would be a secrets manager)."""

    def __init__(self):
        self.keys = json.loads(FILE.read_text()) if FILE.exists() else {}

    def get(self, practice):
        return self.keys.get(practice)

    def put(self, practice, key):
        self.keys[practice] = key
        FILE.write_text(json.dumps(self.keys))

    def discard(self, practice):
        self.keys.pop(practice, None)


class Broken:
    def __init__(self):
        raise RuntimeError("no vault token\\nin the environment")


class NotAStore:
    pass
'''
KEY_ROUTE = ("GET", "/api/partner/practice/{practiceId}/key")


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module `iq_cli_vault` in the current folder (as a user's would be), forgotten after the test."""
    (tmp_path / "iq_cli_vault.py").write_text(VAULT, encoding="utf-8")
    (tmp_path / "iq_cli_broken.py").write_text("raise ImportError('needs the hvac package')\n", encoding="utf-8")
    (tmp_path / "iq_cli_exits.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")  # a script, not a module
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # --key-store puts the current folder on it
    for name in ("iq_cli_vault", "iq_cli_broken", "iq_cli_exits"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield tmp_path
    for name in ("iq_cli_vault", "iq_cli_broken", "iq_cli_exits"):
        sys.modules.pop(name, None)


def test_key_store_option_keeps_practice_keys_in_the_users_store_between_runs(
    served: Served, vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = str(plan_file(vault))
    assert cli.main(["provision", plan, "--plain", "--key-store", "iq_cli_vault:Vault"]) == 0
    assert served.fake.stats.calls[KEY_ROUTE] == 3
    stored = json.loads((vault / "vault.json").read_text())
    assert sorted(stored.values()) == sorted(served.fake.practice_key(p.id) for p in served.fake.practices)
    served.fake.reset_stats()
    assert cli.main(["provision", plan, "--plain", "--key-store", "iq_cli_vault:Vault"]) == 0
    assert served.fake.stats.calls[KEY_ROUTE] == 0  # every practice key from the store: 3 partner-key calls fewer
    assert writes(served.fake) == 0
    out = capsys.readouterr()
    assert not any(key in out.out + out.err for key in stored.values())
    served.fake.reset_stats()
    assert cli.main(["provision", plan, "--plain"]) == 0  # without the option nothing is read from it
    assert served.fake.stats.calls[KEY_ROUTE] == 3


def test_a_bad_key_store_is_one_line_of_error_before_any_request(
    served: Served, vault: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = str(plan_file(vault))
    bad = {
        "iq_cli_vault": "expected MODULE:NAME",
        "iq_cli_nowhere:Vault": "cannot import iq_cli_nowhere: ModuleNotFoundError",
        "iq_cli_broken:Vault": "cannot import iq_cli_broken: ImportError: needs the hvac package",
        "iq_cli_exits:Vault": "cannot import iq_cli_exits: SystemExit: 0",  # not a silent exit 0 doing nothing
        "iq_cli_vault:Missing": "iq_cli_vault has no Missing",
        "iq_cli_vault:NUMBER": "NUMBER is of type int, neither a KeyStore nor a callable",
        "iq_cli_vault:Broken": "Broken() failed: RuntimeError: no vault token in the environment",
        "iq_cli_vault:NotAStore": "NotAStore() made no KeyStore",
    }
    for spec, message in bad.items():
        assert cli.main(["provision", plan, "--plain", "--key-store", spec]) == 2, spec
        err = capsys.readouterr().err
        assert err == f"error: --key-store {spec!r}: {message}" + err.split(message, 1)[1], err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert sum(served.fake.stats.calls.values()) == 0


def test_a_key_store_module_in_the_current_folder_shadows_none_of_the_clients_own_imports(
    served: Served, vault: Path
) -> None:
    # A folder of ops scripts: the vault module, and a helper named like a package the client imports later.
    (vault / "redis.py").write_text("raise ImportError('a script of the user, not the redis package')\n")
    env = dict(os.environ, INTAKEQ_PARTNER_KEY=served.fake.partner_key, INTAKEQ_BASE_URL=served.url)
    options = ["--plain", "--key-store", "iq_cli_vault:Vault", "--redis-url", "redis://127.0.0.1:1/0"]
    done = subprocess.run(  # -P: the console script's sys.path (no current folder on it)
        [sys.executable, "-P", "-m", "intakeq_partner.cli", "provision", str(plan_file(vault, 1)), *options],
        env=env,
        cwd=vault,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads((vault / "vault.json").read_text())) == 1  # the vault was found, and used
