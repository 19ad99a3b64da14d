"""The cattrs structuring candidate measured in bench/decoding.py decodes exactly as `_wire` does, so its
figures compare like with like (a faster decoder that broke a wire rule would prove nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import _data
from bench.cattrs_structure import Structurer
from intakeq_partner._generated.models import Intake, Practice
from intakeq_partner._wire import WireError, loads, structure_list


@pytest.mark.parametrize(("model", "body"), [(Practice, _data.practices_body(50)), (Intake, _data.intakes_body(5))])
def test_the_candidate_decodes_the_benchmark_bodies_as_ours_does(model: type[Any], body: bytes) -> None:
    assert Structurer().structure_list(model, loads(body)) == structure_list(model, loads(body))


def test_the_candidate_keeps_the_wire_rules() -> None:
    rows: list[Any] = [
        {"Id": "a", "DateCreated": 1458526480368, "Tier": 2},
        {"Id": "b", "DateCreated": "2024-05-01T10:00:00", "City": None},
    ]
    assert Structurer().structure_list(Practice, rows) == structure_list(Practice, rows)
    cases = (({"Id": 5}, "id"), ({"City": "x"}, "id"), ({"Id": "a", "FormsEnabled": "secret"}, "forms_enabled"))
    for bad, field in cases:
        with pytest.raises(WireError) as caught:
            Structurer().structure_list(Practice, [bad])
        message = str(caught.value)
        assert f"Practice: invalid $[0].{field}" == message and "secret" not in message
