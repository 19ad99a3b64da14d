"""One naming rule across resources; the first release's spellings still work, with a warning; no Any leaks."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import PARTNER_KEY, practice_fields

from intakeq_partner import PartnerClient, PracticeClient, sso_url
from intakeq_partner.partner import Forms, Practices
from intakeq_partner.practice import Assistants, Intakes, Practitioners
from intakeq_partner.provisioning import parse_plan
from intakeq_partner.testing import FakeIntakeQ


@pytest.fixture
async def partner(fake: FakeIntakeQ) -> typing.AsyncIterator[PartnerClient]:
    async with PartnerClient(PARTNER_KEY, base_url=fake.base_url, transport=fake.transport()) as client:
        await client.practices.create(**practice_fields("n"), external_practice_id="ext-n")
        yield client


async def test_update_takes_an_id_or_an_external_id_first_and_sets_a_new_external_id_by_keyword(
    partner: PartnerClient, fake: FakeIntakeQ
) -> None:
    practice = fake.practice("ext-n")
    assert (await partner.practices.update(practice.id, city="Oslo")).city == "Oslo"
    renamed = await partner.practices.update("ext-n", external_practice_id="ext-n2", city="Bergen")
    assert (renamed.id, renamed.external_practice_id, renamed.city) == (practice.id, "ext-n2", "Bergen")
    v1 = partner.practice(practice.id)
    doc = await v1.practitioners.create(first_name="Bo", last_name="Ek", email="bo@x.io", external_practitioner_id="bo")
    assert (await v1.practitioners.update("bo", first_name="Bea")).first_name == "Bea"
    assert (await v1.practitioners.update(doc.id, external_practitioner_id="bea")).external_practitioner_id == "bea"
    aid = await v1.assistants.create(name="Al", email="al@x.io", external_assistant_id="al", practitioner_ids=[])
    assert (await v1.assistants.update("al", name="Alf")).name == "Alf"
    assert (await v1.assistants.update(aid.id, email="alf@x.io")).email == "alf@x.io"


async def test_get_takes_an_id_or_an_external_id_everywhere(partner: PartnerClient, fake: FakeIntakeQ) -> None:
    practice = fake.practice("ext-n")
    assert (await partner.practices.get("ext-n")) == (await partner.practices.get(practice.id))
    assert (await partner.practices.get(practice.id)).id == practice.id  # type: ignore[union-attr]
    assert (await partner.practices.get(email=practice.email)).id == practice.id  # type: ignore[union-attr]
    assert await partner.practices.get("nobody") is None
    v1 = partner.practice("ext-n")
    doc = await v1.practitioners.create(first_name="Bo", last_name="Ek", email="bo@x.io", external_practitioner_id="bo")
    aid = await v1.assistants.create(name="Al", email="al@x.io", external_assistant_id="al")
    assert (await v1.practitioners.get("bo")) == (await v1.practitioners.get(doc.id)) == doc
    assert (await v1.assistants.get("al")) == (await v1.assistants.get(aid.id)) == aid


Call = Callable[[PartnerClient], Awaitable[object]]
OLD_AND_NEW: dict[str, tuple[Call, Call]] = {
    "practices.get(external_practice_id=)": (
        lambda p: p.practices.get(external_practice_id="ext-n"),  # type: ignore[call-arg]
        lambda p: p.practices.get("ext-n"),
    ),
    "practices.get(id=)": (
        lambda p: p.practices.get(id="ext-n"),  # type: ignore[call-arg]
        lambda p: p.practices.get("ext-n"),
    ),
    "ephemeral_token(practice, user)": (
        lambda p: p.practices.ephemeral_token("ext-n", "ext-n-main"),  # type: ignore[call-arg]
        lambda p: p.practices.ephemeral_token("ext-n", user_id="ext-n-main"),
    ),
    "forms.copy(destination_practice=)": (
        lambda p: _copy(p, destination_practice="ext-n"),
        lambda p: _copy(p, practice="ext-n"),
    ),
    "transfer_data(a, b)": (
        lambda p: p.practice("ext-n").practitioners.transfer_data("ext-n-main", "ext-n-main"),  # type: ignore[call-arg]
        lambda p: p.practice("ext-n").practitioners.transfer_data(source="ext-n-main", destination="ext-n-main"),
    ),
    "transfer_client_ownership(a, b)": (
        lambda p: p.practice("ext-n").practitioners.transfer_client_ownership("ext-n-main", "ext-n-main"),  # type: ignore[call-arg]
        lambda p: p.practice("ext-n").practitioners.transfer_client_ownership(
            source="ext-n-main", destination="ext-n-main"
        ),
    ),
    "practitioners.get(practitioner=)": (
        lambda p: p.practice("ext-n").practitioners.get(practitioner="ext-n-main"),  # type: ignore[call-arg]
        lambda p: p.practice("ext-n").practitioners.get("ext-n-main"),
    ),
    "practices.update(external_practice_id=) naming it": (
        lambda p: p.practices.update(external_practice_id="ext-n", city="Oslo"),
        lambda p: p.practices.update("ext-n", city="Oslo"),
    ),
    "practitioners.update(id=)": (
        lambda p: p.practice("ext-n").practitioners.update(id="ext-n-main", first_name="Al"),  # type: ignore[call-arg]
        lambda p: p.practice("ext-n").practitioners.update("ext-n-main", first_name="Al"),
    ),
    "assistants.get(assistant=)": (
        lambda p: p.practice("ext-n").assistants.get(assistant="x"),  # type: ignore[call-arg]
        lambda p: p.practice("ext-n").assistants.get("x"),
    ),
}


async def _copy(partner: PartnerClient, **where: str) -> object:
    master = (await partner.forms.master())[0]
    return await partner.forms.copy(source_master_form_id=master.id, **where)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(OLD_AND_NEW))
async def test_an_old_spelling_warns_and_sends_what_the_new_one_sends(
    name: str, partner: PartnerClient, fake: FakeIntakeQ
) -> None:
    old, new = OLD_AND_NEW[name]
    await partner.practice("ext-n").practitioners.update(fake.practice("ext-n").main_practitioner_id,
                                                          external_practitioner_id="ext-n-main")  # fmt: skip
    fake.reset_stats()
    with pytest.warns(DeprecationWarning, match="next release") as warned:
        await old(partner)
    assert warned[0].filename == __file__  # the warning points at the caller's line
    sent_by_old = [(r.method, r.route) for r in fake.requests]
    fake.reset_stats()
    await new(partner)
    assert [(r.method, r.route) for r in fake.requests] == sent_by_old


async def test_an_old_and_a_new_spelling_together_are_refused(partner: PartnerClient, fake: FakeIntakeQ) -> None:
    fake.reset_stats()
    with pytest.raises(TypeError):
        await partner.forms.copy(source_master_form_id="f", practice="a", destination_practice="b")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        await partner.practices.ephemeral_token("p", "u", user_id="u")  # type: ignore[misc]
    with pytest.raises(TypeError):
        await partner.practices.get(id="a", external_practice_id="b")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="twice"):
        await partner.practices.update("a", id="b", city="x")  # type: ignore[call-arg]
    assert fake.requests == []


def plan(practice_id: str, main_id: str, practitioner_id: str, assistant_id: str, refs: str, consent: str) -> Any:
    """A one-practice plan whose field names are the arguments (so old and new spellings build the same plan)."""
    doctor = {practitioner_id: "dr", "first_name": "A", "last_name": "B", "email": "a@b.c"}
    desk = {assistant_id: "desk", "name": "C", "email": "c@d.e", refs: ["dr"]}
    practice = {practice_id: "p1", **practice_fields("plan"), main_id: "owner"}
    practice |= {"practitioners": [doctor], "assistants": [desk]}
    return {"defaults": {"forms": ["Intake Form"], consent: True}, "practices": [practice]}


def test_plan_files_use_the_facade_names_and_still_read_the_old_ones() -> None:
    new = plan(
        "external_practice_id",
        "external_practitioner_id",
        "external_practitioner_id",
        "external_assistant_id",
        "practitioner_ids",
        "copy_attached_consent_forms",
    )
    old = plan(
        "external_id",
        "main_practitioner_external_id",
        "external_id",
        "external_id",
        "practitioners",
        "copy_consent_forms",
    )
    with pytest.warns(FutureWarning) as warned:
        from_old = parse_plan(old, source="old.json")
    assert from_old.practices == parse_plan(new).practices
    messages = " ".join(str(w.message) for w in warned)
    for name in ("external_id", "main_practitioner_external_id", "copy_consent_forms", "`practitioners`"):
        assert name in messages
    both = {"practices": [{**new["practices"][0], "external_id": "p1"}]}
    with pytest.raises(ValueError, match="external_id: the old name of external_practice_id"):
        parse_plan(both)


def test_sso_url_pages_are_a_literal_and_unknown_pages_are_refused() -> None:
    hints = typing.get_type_hints(sso_url)
    assert set(typing.get_args(typing.get_args(hints["path"])[0])) == {
        "intakes",
        "templates",
        "settings",
        "report",
        "intake",
    }
    with pytest.raises(ValueError):
        sso_url("forms.example.com", "t", user_id="u", path="invoices")  # type: ignore[arg-type]


def _holds_any(hint: Any) -> bool:
    return hint is Any or any(_holds_any(arg) for arg in typing.get_args(hint))


@pytest.mark.parametrize("cls", [PartnerClient, PracticeClient, Practices, Forms, Practitioners, Assistants, Intakes])
def test_no_public_method_returns_any(cls: type) -> None:
    leaking = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") or not callable(member) or name == "request":
            continue  # request(): the escape hatch for endpoints the spec lacks returns decoded JSON, as it must
        returned = typing.get_type_hints(member).get("return")
        if _holds_any(returned):
            leaking.append(f"{cls.__name__}.{name} -> {returned}")
    assert leaking == []
