"""The facade against the fake IntakeQ, in-process and over a real loopback socket (the `env` fixture runs both)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from conftest import (
    MODES,
    PARTNER_KEY,
    Env,
    FaultOnce,
    api_routes,
    practice_fields,
    seed_whose_request_fails_after_applying,
    stack_transport,
    touch_every_operation,
)

from intakeq_partner import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PartnerClient,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    sso_url,
)
from intakeq_partner.testing import FakeIntakeQ, Faults
from intakeq_partner.testing._records import TIMESTAMP_FORMS

KEY_ROUTE = ("GET", "/api/partner/practice/{practiceId}/key")


async def new_practice(env: Env, tag: str = "a", **extra: Any) -> str:
    practice = await env.partner.practices.create(**practice_fields(tag), **extra)
    return practice.id


# ----- every operation


async def test_every_operation_works_against_the_fake(env: Env) -> None:
    await touch_every_operation(env.partner, env.fake, "solo")
    assert set(env.fake.stats.calls) == api_routes(env.fake)  # every endpoint was reached...
    assert set(env.fake.stats.statuses) == {200}  # ...and none of them refused anything


async def test_several_practices_at_once_each_see_only_their_own_data(env: Env) -> None:
    await asyncio.gather(*(touch_every_operation(env.partner, env.fake, tag) for tag in ("x", "y", "z")))
    assert env.fake.practices == []
    assert env.fake.stats.calls[KEY_ROUTE] == 3 + 3  # one fetch per practice by the client, one by api_key()


# ----- the practice-key cache


async def test_a_hundred_concurrent_first_calls_fetch_the_practice_key_once(env: Env) -> None:
    practice_id = await new_practice(env)
    results = await asyncio.gather(*(env.partner.practice(practice_id).practitioners.list() for _ in range(100)))
    assert all(len(found) == 1 for found in results)
    assert env.fake.stats.calls[KEY_ROUTE] == 1
    assert env.fake.stats.calls[("GET", "/api/v1/practitioners")] == 100


async def test_a_rotated_practice_key_is_fetched_again_once_and_the_call_succeeds(env: Env) -> None:
    practice_id = await new_practice(env)
    v1 = env.partner.practice(practice_id)
    await v1.practitioners.list()
    env.fake.rotate_practice_key(practice_id)

    doc = await v1.practitioners.create(first_name="Bo", last_name="Ek", email="bo@example.com")

    assert doc.id in {p.id for p in env.fake.practitioners(practice_id)}
    assert env.fake.stats.calls[KEY_ROUTE] == 2
    assert env.fake.stats.calls[("POST", "/api/v1/practitioners")] == 2  # refused once, then sent with the new key
    assert env.fake.stats.statuses[401] == 1


# ----- documented failures


async def test_a_duplicate_external_id_is_a_conflict_and_nothing_is_duplicated(env: Env) -> None:
    practice_id = await new_practice(env, "a", external_practice_id="same")
    with pytest.raises(ConflictError) as caught:
        await env.partner.practices.create(**practice_fields("b"), external_practice_id="same")
    assert caught.value.status_code == 409 and caught.value.message
    assert [p.id for p in env.fake.practices] == [practice_id]

    v1 = env.partner.practice(practice_id)
    await v1.practitioners.create(first_name="Bo", last_name="Ek", email="b@example.com", external_practitioner_id="d")
    with pytest.raises(ConflictError):
        await v1.practitioners.create(
            first_name="Cy", last_name="Ek", email="c@example.com", external_practitioner_id="d"
        )
    await v1.assistants.create(name="Al", email="al@example.com", external_assistant_id="x")
    with pytest.raises(ConflictError):
        await v1.assistants.create(name="Di", email="di@example.com", external_assistant_id="x")
    assert len(env.fake.practitioners(practice_id)) == 2 and len(env.fake.assistants(practice_id)) == 1


async def test_an_object_made_without_an_external_id_can_be_given_one(env: Env) -> None:
    practice_id = await new_practice(env, "adopt")  # its main user has no external ID
    clinic = env.partner.practice(practice_id)
    [main] = await clinic.practitioners.list()
    assert main.external_practitioner_id is None
    updated = await clinic.practitioners.update(main.id, external_practitioner_id="owner", role_name="Practitioner")
    assert updated.id == main.id and updated.external_practitioner_id == "owner"
    assert (await clinic.practitioners.get("owner")) == updated
    assert len(env.fake.practitioners(practice_id)) == 1  # found by Id and renamed, not made again


async def test_a_practitioner_with_client_data_can_be_deleted_only_after_transfer(env: Env) -> None:
    practice_id = await new_practice(env)
    v1 = env.partner.practice(practice_id)
    leaving = await v1.practitioners.create(
        first_name="Bo", last_name="Ek", email="bo@example.com", external_practitioner_id="leaving"
    )
    env.fake.add_client_data(practice_id, leaving.id, 3, owned_clients=1)
    main = env.fake.practice(practice_id).main_practitioner_id

    with pytest.raises(ConflictError, match="409 Conflict on DELETE /api/v1/practitioners/"):
        await v1.practitioners.delete("leaving")
    await v1.practitioners.transfer_data(source="leaving", destination=main)
    await v1.practitioners.delete("leaving")

    assert [p.id for p in env.fake.practitioners(practice_id)] == [main]
    assert env.fake.client_data(practice_id, main) == 3
    with pytest.raises(NotFoundError):
        await v1.practitioners.delete("leaving")
    await v1.practitioners.delete("leaving", missing_ok=True)


async def test_a_wrong_key_is_an_authentication_error(env: Env) -> None:
    practice_id = await new_practice(env)
    async with env.client("not-the-partner-key") as stranger:
        with pytest.raises(AuthenticationError) as caught:
            await stranger.practices.list()
    assert caught.value.status_code == 401 and caught.value.path == "/api/partner/practice"

    async with env.practice_client("not-a-practice-key") as wrong:
        with pytest.raises(AuthenticationError):
            await wrong.practitioners.list()
    # The partner key is no practice key either: a client holding it is refused on v1.
    async with env.practice_client(PARTNER_KEY) as confused:
        with pytest.raises(AuthenticationError):
            await confused.assistants.list()
    async with env.practice_client(env.fake.practice_key(practice_id)) as right:
        assert len(await right.practitioners.list()) == 1
    assert (
        env.fake.practitioners(practice_id)[0].id
        == (await env.partner.practice(practice_id).practitioners.list())[0].id
    )


async def test_an_unknown_practice_is_not_found(env: Env) -> None:
    with pytest.raises(NotFoundError):
        await env.partner.practice("no-such-practice").practitioners.list()
    assert await env.partner.practices.get("no-such-practice") is None
    with pytest.raises(NotFoundError):
        await env.partner.practices.delete("no-such-practice")
    await env.partner.practices.delete("no-such-practice", missing_ok=True)


async def test_an_invalid_role_is_a_bad_request_naming_the_problem(env: Env) -> None:
    practice_id = await new_practice(env)
    with pytest.raises(BadRequestError, match="Role 'Janitor' does not exist"):
        await env.partner.practice(practice_id).practitioners.create(
            first_name="Bo", last_name="Ek", email="bo@example.com", role_name="Janitor"
        )


async def test_an_expired_form_link_answers_401(env: Env) -> None:
    practice_id = await new_practice(env)
    form = env.fake.add_practice_form(practice_id, "Short", questions=1)
    v1 = env.partner.practice(practice_id)
    intake = await v1.intakes.create(
        questionnaire_id=form.id, external_client_id="client-1", client_name="Cy", client_phone="5550100"
    )
    token = await v1.intakes.create_token(intake.id)

    assert (await env.browser.get(token.url_with_auth(redirect="https://example.com/done"))).status_code == 200
    env.fake.advance_clock(timedelta(hours=1, seconds=1))
    assert (await env.browser.get(token.url_with_auth())).status_code == 401


async def test_an_sso_link_works_once_when_followed_for_real() -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=5)
    async with fake.serve() as base_url, PartnerClient(PARTNER_KEY, base_url=base_url) as partner:
        practice = await partner.practices.create(**practice_fields("sso"), external_practice_id="sso")
        token = await partner.practices.ephemeral_token("sso")
        url = sso_url(base_url, token, path="templates")
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            first = await browser.get(url)
            assert first.status_code == 200 and first.url.path == "/templates"
            again = await browser.get(url)
            assert again.status_code == 401
        async with httpx.AsyncClient(follow_redirects=True) as other_browser:
            fresh = await partner.practices.ephemeral_token(practice.id)
            assert (await other_browser.get(sso_url(base_url, fresh))).url.path == "/dashboard"


# ----- faults


async def test_a_post_that_may_have_arrived_is_never_sent_twice(env: Env) -> None:
    practice_id = await new_practice(env)
    form = env.fake.add_practice_form(practice_id, "Short")
    v1 = env.partner.practice(practice_id)
    await v1.practitioners.list()  # the key is cached before the network turns bad
    env.fake.faults = Faults(p_drop=1.0)

    with pytest.raises(APIConnectionError) as caught:
        await v1.intakes.create(questionnaire_id=form.id, client_id=7)
    assert caught.value.maybe_sent is True
    assert env.fake.stats.calls[("POST", "/api/v1/intakes/create")] == 1
    # A GET on the same broken network is retried (max_retries=2 by default): three attempts.
    with pytest.raises(APIConnectionError):
        await v1.assistants.list()
    assert env.fake.stats.calls[("GET", "/api/v1/assistants")] == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what", ["practice", "practitioner", "assistant"])
async def test_a_create_dropped_after_it_was_applied_returns_the_one_existing_object(mode: str, what: str) -> None:
    """The fake applies the create, then drops the connection: the facade finds the object instead of resending."""
    # The create is API request 1 for a practice; for v1 it follows the practice's creation and the key fetch.
    position = 1 if what == "practice" else 3
    fake = FakeIntakeQ(PARTNER_KEY, seed=await seed_whose_request_fails_after_applying(position))
    path = {
        "practice": "/api/partner/practice",
        "practitioner": "/api/v1/practitioners",
        "assistant": "/api/v1/assistants",
    }
    async with contextlib.AsyncExitStack() as stack:
        if mode != "in-process":
            base_url = await stack.enter_async_context(fake.serve())
            inner: httpx.AsyncBaseTransport = stack_transport(mode.removeprefix("loopback-"))
        else:
            base_url, inner = fake.base_url, fake.transport()
        transport = FaultOnce(inner, fake, "POST", path[what], Faults(p_drop=1.0))
        partner = await stack.enter_async_context(PartnerClient(PARTNER_KEY, base_url=base_url, transport=transport))
        created: Any
        if what == "practice":
            created = await partner.practices.create(**practice_fields("q"), external_practice_id="once")
            stored: list[Any] = [p for p in fake.practices if p.external_id == "once"]
        else:
            practice_id = (await partner.practices.create(**practice_fields("p"))).id
            v1 = partner.practice(practice_id)
            if what == "practitioner":
                created = await v1.practitioners.create(
                    first_name="Bo", last_name="Ek", email="bo@example.com", external_practitioner_id="once"
                )
                stored = [p for p in fake.practitioners(practice_id) if p.external_id == "once"]
            else:
                created = await v1.assistants.create(name="Al", email="al@example.com", external_assistant_id="once")
                stored = [a for a in fake.assistants(practice_id) if a.external_id == "once"]
    assert [(r.method, r.raw_path, r.fault, r.fault_when) for r in fake.requests if r.fault] == [
        ("POST", path[what], "drop", "after")
    ]
    assert len(stored) == 1 and created.id == stored[0].id
    assert fake.stats.calls[("POST", path[what])] == 1  # looked up, never posted again


async def test_a_create_without_external_id_that_may_have_arrived_is_raised_not_resent(env: Env) -> None:
    env.fake.faults = Faults(p_drop=1.0)
    with pytest.raises(APIConnectionError):
        await env.partner.practices.create(**practice_fields("n"))
    assert env.fake.stats.calls[("POST", "/api/partner/practice")] == 1


@pytest.mark.parametrize(
    ("faults", "error", "attempts"),
    [
        (Faults(p429=1.0, retry_after=0), RateLimitError, 2),
        (Faults(p5xx=1.0, statuses_5xx=(500,)), ServerError, 2),  # a GET is harmless to repeat
        (Faults(p5xx=1.0, statuses_5xx=(502,)), ServerError, 2),
        (Faults(p_drop=1.0), APIConnectionError, 2),
        (Faults(p_hang=1.0, hang_seconds=5.0), APITimeoutError, 2),
        (Faults(p_malformed=1.0), ResponseValidationError, 2),  # an unreadable answer to a GET: asked again
    ],
    ids=["429", "500", "502-html", "drop", "hang", "malformed"],
)
async def test_each_fault_of_the_server_reaches_the_caller_as_its_error(
    env: Env, faults: Faults, error: type[Exception], attempts: int
) -> None:
    env.fake.faults = faults
    async with env.client(timeout=0.2, max_retries=1) as partner:
        with pytest.raises(error):
            await partner.forms.master()
    assert env.fake.stats.calls[("GET", "/api/partner/masterForms")] == attempts  # max_retries=1


# ----- readings of the document the fake can play


@pytest.mark.parametrize("form", TIMESTAMP_FORMS)
async def test_every_timestamp_decodes_to_an_aware_datetime_whichever_form_the_server_writes(form: str) -> None:
    fake = FakeIntakeQ(PARTNER_KEY, seed=3, timestamps=form)  # type: ignore[arg-type]
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as partner:
        for tag in ("a", "b", "c"):
            await partner.practices.create(**practice_fields(tag), external_practice_id=f"ext-{tag}")
        v1 = partner.practice("ext-a")
        await v1.practitioners.create(first_name="Bo", last_name="Ek", email="bo@example.com")
        await v1.assistants.create(name="Al", email="al@example.com")
        [master] = [f for f in await partner.forms.master() if f.name == "Intake Form"]
        copy = await partner.forms.copy(source_master_form_id=master.id, practice="ext-a")
        intake = await v1.intakes.create(questionnaire_id=copy.id, client_name="Cy", client_email="cy@example.com")
        assert intake.questionnaire_id == copy.id
        token = await v1.intakes.create_token(intake.id)
        listed = await partner.practices.list()
        stamps = [p.date_created for p in listed]
        stamps += [p.date_created for p in await v1.practitioners.list()]
        stamps += [a.date_created for a in await v1.assistants.list()]
        stamps += [intake.date_created, token.expiration]
    created = {p.id: p.date_created for p in fake.practices}
    assert len(stamps) == 3 + 2 + 1 + 2
    for stamp in stamps:
        assert stamp is not None and stamp.tzinfo is not None
        assert abs(stamp - fake.now()) < timedelta(hours=2)  # the same moments, whichever form they came in
    assert sorted(created.values())[0] <= fake.now()
    # The float and seven-digit forms carry the microseconds, the others the milliseconds ("mixed": either).
    for practice in listed:
        exact = created[practice.id]
        to_ms = exact.replace(microsecond=exact.microsecond // 1000 * 1000)
        allowed = {"unix-ms-float": {exact}, "iso-7": {exact}, "mixed": {exact, to_ms}}.get(form, {to_ms})
        assert practice.date_created in allowed
