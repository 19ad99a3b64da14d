"""What every handler of the fake works with: the request context and the ways to answer."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ._requests import read_body
from ._state import ApiError, Practice


@dataclass
class Ctx:
    request: Request
    params: dict[str, str]
    practice: Practice | None
    operation: ModuleType | None = None

    @property
    def own_practice(self) -> Practice:
        assert self.practice is not None
        return self.practice

    async def body(self) -> Any:
        """The request body as the operation's generated model; a 400 naming the field when it does not fit."""
        assert self.operation is not None
        return read_body(self.operation, await self.request.body())

    def query(self, name: str) -> str | None:
        value = self.request.query_params.get(name)
        return value if value else None


Handler = Callable[[Ctx], Awaitable[Response]]


def ok() -> Response:
    return Response(status_code=200)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"Message": message}, status_code=status, headers=headers)


def page(title: str, status: int = 200) -> Response:
    text = html.escape(title)
    return HTMLResponse(
        f"<!doctype html><html><head><title>{text}</title></head><body><h1>{text}</h1></body></html>", status
    )


def int_query(ctx: Ctx, name: str) -> int | None:
    value = ctx.query(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer.") from None
    if number < 1:
        raise ApiError(400, f"{name} must be 1 or more.")
    return number


def base_url(ctx: Ctx) -> str:
    return str(ctx.request.base_url).rstrip("/")
