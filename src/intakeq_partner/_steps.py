"""Big list answers decoded in steps, so that the event loop stays responsive (no callback over ~20 ms).

A backend's loop serves every request of the process: one 10,000-practice answer (3.5 MB) decoded in one go
held it for 37-74 ms on a small machine. Above BIG bytes, a list answer of a generated operation is parsed in
pieces of about STEP_BYTES (the array split where one object ends and the next begins) and turned into models
STEP_ITEMS at a time, with the loop free between steps. Nothing about the result changes: a piece that does
not parse (a split that fell inside a string or a nested array, or a body that is not an array) sends the
whole answer to the one-piece decoder, which decodes it, or raises the error it would have raised anyway.
"""

from __future__ import annotations

import asyncio
import re
import sys
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ._errors import strip_bom
from ._wire import RequestSpec, loads, structure_list

T = TypeVar("T")

BIG = 512 * 1024  # bytes: smaller answers decode in one go (a few ms at most)
STEP_BYTES = 128 * 1024  # bytes parsed per step
STEP_ITEMS = 200  # models built per step

_BETWEEN = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")  # where one object of the array may end and the next begin
_models: dict[Callable[..., Any], type[Any] | None] = {}


def list_model(parse: Callable[..., Any]) -> type[Any] | None:
    """The model a generated operation's `parse_response` decodes a list of, or None (not a list answer)."""
    try:
        return _models[parse]
    except KeyError:
        pass
    module = sys.modules.get(getattr(parse, "__module__", "") or "")
    model = None
    if getattr(parse, "__name__", "") == "parse_response" and getattr(module, "RESPONSE_IS_LIST", False):
        model = getattr(module, "RESPONSE_MODEL", None)
    _models[parse] = model
    return model


def parse_in_steps(
    parse: Callable[[httpx.Response, RequestSpec], T], response: httpx.Response, request: RequestSpec
) -> T | Awaitable[T]:
    """`parse(response, request)`, or for a big list answer an awaitable that decodes it in steps."""
    if len(response.content) < BIG:
        return parse(response, request)
    model = list_model(parse)
    if model is None:
        return parse(response, request)
    return _in_steps(parse, response, request, model)


async def _in_steps(
    parse: Callable[[httpx.Response, RequestSpec], T], response: httpx.Response, request: RequestSpec, model: Any
) -> T:
    items: list[Any] | None = None
    models: list[Any] | None = []
    try:
        assert models is not None
        for piece in _pieces(strip_bom(response.content)):
            items = loads(piece)  # a piece at a time: the dicts of one are garbage before the next is read
            await asyncio.sleep(0)
            for start in range(0, len(items), STEP_ITEMS):
                # The answer read as the request says (tolerant or strict), so a surprise keeps the steps.
                models += structure_list(model, items[start : start + STEP_ITEMS], strict=request.strict)
                await asyncio.sleep(0)
        return typing.cast(T, models)  # what decode_list returns: a list of the model
    except Exception:
        pass
    items = models = None  # nothing of the body stays in this frame, which a raised error's traceback keeps
    return parse(response, request)


def _pieces(body: bytes) -> list[bytes]:
    """The array in `body` as smaller arrays of its objects, each a JSON text; ValueError if it is no array."""
    text = body.strip()
    if not (text.startswith(b"[") and text.endswith(b"]")):
        raise ValueError("not an array")
    end = len(text) - 1
    pieces = []
    position = 1
    while True:
        cut = _BETWEEN.search(text, position + STEP_BYTES, end) if position + STEP_BYTES < end else None
        if cut is None:
            pieces.append(b"[" + text[position:end] + b"]")
            return pieces
        pieces.append(b"[" + text[position : cut.start() + 1] + b"]")
        position = cut.end() - 1
