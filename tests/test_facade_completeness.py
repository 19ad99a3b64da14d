"""Every field a request body may carry (read from the spec) can be set through the facade, and through the
provisioning plan where the plan covers that object. A new settable field the facade does not expose fails here
with its name."""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import respx
from test_operation_registry import readme_rows

from generator import spec as specs
from intakeq_partner import InvalidRequestError, PartnerClient
from intakeq_partner._generated import models
from intakeq_partner.provisioning.plan import AssistantSpec, PracticeSpec, PractitionerSpec

BASE = "https://intakeq.test"
SPEC = specs.load()
OPERATIONS = specs.operations(SPEC)
# Facade parameters named differently from the model's attribute (the facade's name says what it takes).
# An update's Id is that of the object its first argument, `ref`, names.
FACADE_NAMES = {
    ("CopyFormRequest", "destination_practice_id"): "practice",
    ("PracticeUpdate", "id"): "ref",
    ("PractitionerUpdate", "id"): "ref",
    ("AssistantUpdate", "id"): "ref",
}
# Arguments that make a valid call, so that one more field can be added; several when fields exclude each other.
BASES: dict[str, list[dict[str, Any]]] = {
    "create_practice": [{"practice_name": "P", "first_name": "F", "last_name": "L", "email": "e@x.test"}],
    # Updates read the object first; `current` hands it in, so the one request sent is the PUT.
    "update_practice": [
        {"ref": "P1", "current": models.Practice("P1", practice_name="P", first_name="F", last_name="L", email="e@x")}
    ],
    "copy_form": [{"source_master_form_id": "f1", "practice": "P1"}],
    "create_practitioner": [{"first_name": "F", "last_name": "L", "email": "e@x.test"}],
    "update_practitioner": [{"ref": "u1", "current": models.Practitioner("u1")}],
    "create_assistant": [{"name": "N", "email": "e@x.test"}],
    "update_assistant": [{"ref": "a1", "current": models.Assistant("a1", practitioner_ids=[])}],
    "create_intake": [
        {"questionnaire_id": "q1", "client_id": 7},
        {"questionnaire_id": "q1", "client_name": "C", "client_email": "c@x.test"},
    ],
}
# Plan items and the request models they fill, with the plan's names for fields it names differently.
PLAN: dict[str, tuple[type[Any], dict[str, str]]] = {
    "PracticeCreate": (
        PracticeSpec,
        {"external_practice_id": "external_id", "external_practitioner_id": "main_practitioner_external_id"},
    ),
    "PractitionerCreate": (PractitionerSpec, {"external_practitioner_id": "external_id"}),
    "AssistantCreate": (AssistantSpec, {"external_assistant_id": "external_id", "practitioner_ids": "practitioners"}),
}


def request_fields() -> list[tuple[str, str, str, str]]:
    """(operationId, model, attribute, wire name) for every field of every request body in the spec."""
    found = []
    for op in OPERATIONS.values():
        if op.request is None:
            continue
        cls = getattr(models, op.request)
        wire_to_attr = {f.metadata["wire"]: f.name for f in attrs.fields(cls) if "wire" in f.metadata}
        found += [(op.id, op.request, wire_to_attr[w], w) for w in specs.fields(SPEC, op.request)]
    return found


FIELDS = request_fields()


def sample(hint: Any) -> Any:
    """A value of the field's type that no base argument uses."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = args[0]
    if kind is bool:
        return True
    if kind is int:
        return 42
    if typing.get_origin(kind) is list or kind is list:
        return ["sample-item"]
    return "sample-value"


@pytest.fixture
async def partner() -> AsyncIterator[PartnerClient]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/api/partner/practice/P1/key").mock(return_value=httpx.Response(200, json={"ApiKey": "k1"}))
        router.route(method__in=["POST", "PUT"]).mock(return_value=httpx.Response(200, json={"Id": "x"}))
        async with PartnerClient("completeness-key", base_url=BASE, max_retries=0, http_stack="httpx") as client:
            client.router = router  # type: ignore[attr-defined]
            yield client


@pytest.mark.parametrize(("op_id", "model", "attr", "wire"), FIELDS, ids=[f"{m}.{w}" for _, m, _, w in FIELDS])
async def test_each_request_field_can_be_set_through_the_facade(
    partner: PartnerClient, op_id: str, model: str, attr: str, wire: str
) -> None:
    row = readme_rows()[op_id]
    client = partner if row["client"] == "partner" else partner.practice("P1")
    method = getattr(getattr(client, row["resource"]), row["method_name"])
    name = FACADE_NAMES.get((model, attr), attr)
    assert name in inspect.signature(method).parameters, (
        f"{model}.{wire} cannot be set: {row['client']}.{row['resource']}.{row['method_name']}() has no `{name}`"
    )
    value = sample(typing.get_type_hints(getattr(models, model))[attr])
    router: respx.MockRouter = partner.router  # type: ignore[attr-defined]
    for base in BASES[op_id]:
        router.reset()
        kwargs = {**base, name: value}
        if name == "ref":  # the object found (here: handed in) is the one named
            kwargs["current"] = attrs.evolve(kwargs["current"], id=value)
        params = inspect.signature(method).parameters.values()
        positional = [kwargs.pop(p.name) for p in params if p.kind is p.POSITIONAL_ONLY and p.name in kwargs]
        try:
            await method(*positional, **kwargs)
        except InvalidRequestError:
            continue  # this base excludes the field; the next one may not
        sent = [c.request for c in router.calls if c.request.method in ("POST", "PUT")]
        body = json.loads(sent[-1].content)
        assert body.get(wire) == value, f"{name}={value!r} did not reach {wire} in the body of {op_id}"
        return
    pytest.fail(f"no valid call of {row['method_name']}() sets {model}.{wire}")


# Facade parameters that steer the call rather than fill a field of the body.
CONTROL = {"current"}


async def test_no_facade_parameter_is_left_without_a_request_field(partner: PartnerClient) -> None:
    """The other way round: a field the spec removed must not linger as a parameter that goes nowhere."""
    stale = []
    for op in OPERATIONS.values():
        if op.request is None:
            continue
        row = readme_rows()[op.id]
        client = partner if row["client"] == "partner" else partner.practice("P1")
        method = getattr(getattr(client, row["resource"]), row["method_name"])
        fields = {FACADE_NAMES.get((m, a), a) for o, m, a, _ in FIELDS if o == op.id}
        stale += [
            f"{row['resource']}.{row['method_name']}({name}=...) fills no field of {op.request}"
            for name, p in inspect.signature(method).parameters.items()
            if p.kind is p.KEYWORD_ONLY and name not in fields | CONTROL
        ]
    assert stale == []


@pytest.mark.parametrize("model", list(PLAN))
def test_each_create_field_can_be_set_through_the_provisioning_plan(model: str) -> None:
    item, renamed = PLAN[model]
    plan_fields = {f.name for f in dataclasses.fields(item)}
    missing = [
        f"{model}.{f.metadata['wire']} (plan field `{renamed.get(f.name, f.name)}` on {item.__name__})"
        for f in attrs.fields(getattr(models, model))
        if "wire" in f.metadata and renamed.get(f.name, f.name) not in plan_fields
    ]
    assert missing == [], "the provisioning plan cannot set: " + ", ".join(missing)
