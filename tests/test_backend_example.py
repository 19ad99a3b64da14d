"""examples/backend/app.py works end to end against the fake, and under load with no warning at all."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from examples.backend.app import create_app
from intakeq_partner import PartnerClient
from intakeq_partner.testing import FakeIntakeQ

ROOT = Path(__file__).resolve().parents[1]
ONBOARDING = {
    "external_practice_id": "lee-therapy",
    "practice_name": "Lee Therapy",
    "first_name": "Ann",
    "last_name": "Lee",
    "email": "ann@lee-therapy.example.com",
}


@pytest.fixture
async def backend(fake: FakeIntakeQ) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, its lifespan running, its PartnerClient on the in-process fake."""
    app = create_app(lambda: PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport()))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backend") as client:
            yield client


async def test_onboarding_returns_the_practice_as_plain_data_and_repeats_safely(
    backend: httpx.AsyncClient, fake: FakeIntakeQ
) -> None:
    first = await backend.post("/practices", json=ONBOARDING)
    assert first.status_code == 201
    practice = first.json()
    assert practice["practice_name"] == "Lee Therapy" and practice["id"] == fake.practice("lee-therapy").id
    assert practice["date_created"].endswith("Z")  # to_dict made it JSON: an ISO string, not a datetime
    assert [form.name for form in fake.forms("lee-therapy")] == ["Intake Form"]

    again = await backend.post("/practices", json=ONBOARDING)
    assert again.status_code == 201 and again.json()["id"] == practice["id"]
    assert len(fake.practices) == 1 and len(fake.forms("lee-therapy")) == 1  # nothing made twice

    refused = await backend.post("/practices", json={**ONBOARDING, "external_practice_id": "new", "email": ""})
    assert refused.status_code == 422  # the client's own validation refused the create before sending it
    # The first create, the form copy, and the repeated create (a 409, then the practice found by a look-up).
    assert [r.method for r in fake.requests].count("POST") == 3


async def test_onboarding_a_practice_again_with_other_details_answers_what_intakeq_holds(
    backend: httpx.AsyncClient, fake: FakeIntakeQ
) -> None:
    first = (await backend.post("/practices", json=ONBOARDING)).json()
    again = await backend.post("/practices", json={**ONBOARDING, "practice_name": "Lee & Co"})
    assert again.status_code == 201 and again.json() == first  # ConflictError.existing, kept as IntakeQ holds it
    assert len(fake.practices) == 1 and len(fake.forms("lee-therapy")) == 1


async def test_the_form_notification_url_signs_the_user_in_on_that_form(
    backend: httpx.AsyncClient, fake: FakeIntakeQ
) -> None:
    await backend.post("/practices", json=ONBOARDING)
    [form] = fake.forms("lee-therapy")
    async with PartnerClient(fake.partner_key, base_url=fake.base_url, transport=fake.transport()) as partner:
        intake = await partner.practice("lee-therapy").intakes.create(
            questionnaire_id=form.id, client_name="Sam Poe", client_email="sam@example.com"
        )
    assert (await backend.get(f"/intake/{intake.id}")).status_code == 401  # the backend signs users in first

    await backend.post("/login", json={"practice": "lee-therapy"})
    redirect = await backend.get(f"/intake/{intake.id}")
    assert redirect.status_code == 303
    location = redirect.headers["location"]
    assert location.startswith(f"{fake.base_url}/signin/authenticate?") and f"pathKey={intake.id}" in location

    async with fake.client() as browser:  # the browser follows it to IntakeQ (here: the fake)
        landed = await browser.get(location, follow_redirects=True)
    assert landed.status_code == 200 and landed.url.path == f"/intake/{intake.id}"
    assert fake.stats.calls[("GET", "/api/partner/practice/{practiceId}/ephemeral")] == 1  # one token, one visit


def test_100_concurrent_onboardings_of_25_practices_and_50_visits_over_loopback_in_dev_mode_warn_about_nothing() -> (
    None
):
    """tests/backend_load.py: every onboarding answered 201 (no 409 reaches a caller), one practice and one form
    copy per external ID, every visit redirected with its own token; and nothing at all on stderr."""
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-m", "tests.backend_load"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("150 requests at once") and "ok: 26 practices" in done.stdout
    assert "onboardings: 100 of 100 answered 201; 26 practices" in done.stdout
    assert done.stderr == ""
