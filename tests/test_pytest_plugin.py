"""The pytest plugin users get with the testing extra, and the fake's runner when the extra is missing."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from typing import Any

import pytest

import intakeq_partner.testing as testing
from intakeq_partner.testing import __main__ as runner


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    [entry] = [e for e in metadata.entry_points(group="pytest11") if e.value.startswith("intakeq_partner")]
    assert entry.load().intakeq_client is not None


def test_fixtures_give_a_fake_with_marker_options_and_a_client_wired_to_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import pytest
        from intakeq_partner import APIStatusError, PartnerClient
        from intakeq_partner.testing import FakeIntakeQ, Faults

        @pytest.mark.intakeq_fake(seed=5, page_size=7)
        def test_marker_options_reach_the_fake(intakeq_fake):
            assert isinstance(intakeq_fake, FakeIntakeQ) and intakeq_fake.page_size == 7

        @pytest.mark.asyncio
        async def test_client_faults_and_inspection(intakeq_client, intakeq_fake):
            assert isinstance(intakeq_client, PartnerClient)
            intakeq_fake.faults = Faults(p5xx=1.0, statuses_5xx=(503,))
            with pytest.raises(APIStatusError):
                await intakeq_client.forms.master()
            assert [r.status for r in intakeq_fake.requests] == [503, 503, 503]  # two retries, no waiting
            intakeq_fake.faults = Faults()
            assert len(await intakeq_client.forms.master()) == len(intakeq_fake.master_forms)

        def test_each_test_gets_a_fresh_fake(intakeq_fake):
            assert intakeq_fake.requests == [] and intakeq_fake.practices == []
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=3)


@pytest.fixture
def without_testing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starlette and uvicorn look uninstalled, as after a plain `pip install intakeq-partner`."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.split(".")[0] in ("starlette", "uvicorn") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delitem(vars(testing), "FakeIntakeQ", raising=False)


@pytest.mark.usefixtures("without_testing_extra")
def test_runner_without_the_extra_says_how_to_install_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'intakeq-partner[testing]'" in err and "Traceback" not in err


@pytest.mark.usefixtures("without_testing_extra")
def test_importing_the_fake_without_the_extra_names_the_extra() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"intakeq-partner\[testing\]"):
        _ = testing.FakeIntakeQ


def test_every_flag_of_the_runner_has_a_help_text() -> None:
    actions = [a for a in runner.build_parser()._actions if a.option_strings and a.dest != "help"]
    assert actions and [a.dest for a in actions if not a.help] == []
