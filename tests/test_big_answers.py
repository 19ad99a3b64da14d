"""A big list answer is decoded in steps, with the event loop free between them, and to the same result.

Behaviour, not timing: a task that counts the loop's turns sees it turn while the models are built (in one
callback it could not), and every body, split well or badly, decodes exactly as the one-piece decoder does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from conftest import FAST, PARTNER_KEY, STACKS
from rawservers import respond, sequence, serve

from bench import _data
from intakeq_partner import PartnerClient, _steps, _wire
from intakeq_partner._errors import ResponseValidationError
from intakeq_partner._generated.api.practices import list_practices
from intakeq_partner._generated.models import Practice

BODY = _data.practices_body(3000)  # about 1 MB, past _steps.BIG


@pytest.mark.parametrize("stack", STACKS)
async def test_a_big_list_is_decoded_while_other_tasks_keep_running(
    stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _wire.structure_list(Practice, json.loads(BODY))
    turns = 0
    seen_at: list[int] = []
    decoder = _wire._decoders.get(Practice) or _wire._compile_decoder(Practice)

    def counting(data: Any) -> Any:
        seen_at.append(turns)
        return decoder(data)

    monkeypatch.setitem(_wire._decoders, Practice, counting)

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async with serve(sequence([respond(200, BODY), respond(200, b"[]")])) as server:
        options: dict[str, Any] = {**FAST, "http_stack": stack}
        async with PartnerClient(PARTNER_KEY, base_url=server.base_url, **options) as partner:
            tick = asyncio.ensure_future(ticker())
            try:
                found = await partner.practices.list()
            finally:
                tick.cancel()
    assert found == expected
    assert len(seen_at) == 3000
    assert len(set(seen_at)) >= 3000 // _steps.STEP_ITEMS  # the loop turned between the steps


def _request() -> Any:
    return list_practices.build_request()


BODIES = {
    "spaced": json.dumps([{"Id": f"p{i}", "PracticeName": "x"} for i in range(50)], indent=2).encode(),
    "braces in strings": json.dumps([{"Id": f"p{i}", "PracticeName": "a}, {b"} for i in range(50)]).encode(),
    "bom": b"\xef\xbb\xbf" + json.dumps([{"Id": f"p{i}"} for i in range(50)]).encode(),
    "empty": b"[ ]",
    "not an array": json.dumps({"Id": "p1"}).encode(),
    "broken": json.dumps([{"Id": f"p{i}"} for i in range(50)]).encode()[:-7],
    "a bad field": json.dumps([{"Id": f"p{i}", "PracticeName": 5 if i == 40 else "x"} for i in range(50)]).encode(),
    "trailing junk": json.dumps([{"Id": f"p{i}"} for i in range(50)]).encode() + b" x",
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
async def test_decoding_in_steps_gives_what_the_one_piece_decoder_gives(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_steps, "BIG", 0)
    monkeypatch.setattr(_steps, "STEP_BYTES", 40)  # cut the array everywhere, in strings too
    monkeypatch.setattr(_steps, "STEP_ITEMS", 7)
    response = httpx.Response(200, content=body)
    request = _request()
    try:
        expected: object = list_practices.parse_response(response, request)
    except ResponseValidationError as exc:
        expected = (type(exc), str(exc))
    result = _steps.parse_in_steps(list_practices.parse_response, response, request)
    assert asyncio.iscoroutine(result)
    try:
        got: object = await result
    except ResponseValidationError as exc:
        got = (type(exc), str(exc))
    assert got == expected


def test_small_answers_and_answers_that_are_no_list_decode_in_one_piece() -> None:
    response = httpx.Response(200, content=b'[{"Id": "p1"}]')
    assert _steps.parse_in_steps(list_practices.parse_response, response, _request()) == [Practice(id="p1")]
    big = httpx.Response(200, content=b" " * _steps.BIG + b"[]")

    def parse_json(response: httpx.Response, request: Any) -> Any:
        return json.loads(response.content)

    assert _steps.parse_in_steps(parse_json, big, _request()) == []


async def test_a_surprising_field_read_tolerantly_keeps_the_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tolerant reading (clients' default) in steps too: a field of an unexpected type does not send the whole
    answer back to the one-piece decoder (which would hold the loop), and is kept as received."""
    monkeypatch.setattr(_steps, "BIG", 0)
    monkeypatch.setattr(_steps, "STEP_ITEMS", 7)
    one_piece: list[object] = []

    def parse_response(response: httpx.Response, request: Any) -> Any:
        one_piece.append(request)
        return list_practices.parse_response(response, request)

    monkeypatch.setitem(_steps._models, parse_response, list_practices.RESPONSE_MODEL)
    response = httpx.Response(200, content=BODIES["a bad field"])
    practices = await _steps.parse_in_steps(parse_response, response, _request())
    assert one_piece == [] and len(practices) == 50
    assert practices[40].practice_name is None and practices[40].additional_properties == {"PracticeName": 5}
