"""The HTTP face of the fake: routing on the raw path, auth, faults and the web pages (API handlers: _handlers).

Routing matches the percent-encoded path one segment at a time, so an external ID such as ``a/b?c d``
(sent as ``a%2Fb%3Fc%20d``) stays one path parameter, as it does on the real service.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from types import ModuleType
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Message, Receive, Scope, Send

from .._generated.operations import OPERATIONS
from ._faults import Plan, RequestRecord, draw_plan
from ._handlers import api_handlers
from ._http import Ctx, Handler, error, page
from ._requests import check_query
from ._state import ApiError, Practice, State

if TYPE_CHECKING:
    from ._fake import FakeIntakeQ

ABORT_EXTENSION = "intakeq_partner.fake.abort"
"""Scope extension the loopback server sets: a callable that closes the socket without an answer."""
SESSION_COOKIE = "iq_session"
SSO_PATHS = {
    None: "/dashboard",
    "intakes": "/intakes",
    "templates": "/templates",
    "settings": "/settings",
    "report": "/report",
}

Auth = Literal["partner", "practice", "none"]


class ConnectionDropped(Exception):
    """Raised in-process where a socket would be closed; the fake's transport turns it into an httpx error."""


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    auth: Auth
    handler: Handler
    operation: ModuleType | None = None  # the generated module of an API operation; None for web pages
    implemented: bool = True

    @property
    def segments(self) -> list[str]:
        return self.template.strip("/").split("/")


class Router:
    """Matches methods and raw paths against route templates; literal segments win over parameters."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def match(self, method: str, raw_path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Return (route, decoded params, whether the path exists for some other method)."""
        try:
            parts = [unquote(p, errors="strict") for p in raw_path.strip("/").split("/")]
        except UnicodeDecodeError:
            return None, {}, False
        best: tuple[int, Route, dict[str, str]] | None = None
        path_known = False
        for route in self.routes:
            segments = route.segments
            if len(segments) != len(parts):
                continue
            params: dict[str, str] = {}
            literals = 0
            for segment, part in zip(segments, parts, strict=True):
                if segment.startswith("{"):
                    if not part:
                        break
                    params[segment[1:-1]] = part
                elif segment == part:
                    literals += 1
                else:
                    break
            else:
                if route.method != method:
                    path_known = True
                    continue
                if best is None or literals > best[0]:
                    best = (literals, route, params)
        if best is None:
            return None, {}, path_known
        return best[1], best[2], False


class FakeApp:
    """The ASGI app: fault layer around a Starlette app that serves the API and the web pages."""

    def __init__(self, fake: FakeIntakeQ) -> None:
        self.fake = fake
        self.router = Router(_routes(fake))
        # The operationIds this fake answers (the rest of the spec's operations answer 501).
        self.implemented = frozenset(
            r.operation.OPERATION_ID for r in self.router.routes if r.operation and r.implemented
        )
        self.starlette = Starlette(routes=[StarletteRoute("/{path:path}", self._endpoint, methods=_METHODS)])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return
        fake = self.fake
        method: str = scope["method"]
        raw_path = (scope.get("raw_path") or scope["path"].encode()).split(b"?")[0].decode("latin-1")
        route, params, path_known = self.router.match(method, raw_path)
        auth = fake._classify(_header(scope, b"x-auth-key"))
        if route is not None:
            fake.stats.calls[(method, route.template)] += 1
        status: int | None = None
        fault: str | None = None
        plan: Plan | None = None

        gone = False  # the client disconnected: whatever the app still sends goes nowhere

        async def watched_receive() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def recording_send(message: Message) -> None:
            nonlocal status
            if gone:
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
                fake.stats.statuses[status] += 1
            await send(message)

        async def swallow(message: Message) -> None:
            return None

        inner_scope = dict(scope)
        inner_scope["intakeq_partner.fake"] = (route, params, path_known, auth)

        async def apply(target: Send) -> None:
            await self.starlette(inner_scope, watched_receive, target)

        try:
            if not raw_path.startswith("/api/"):
                await apply(recording_send)
                return
            plan = draw_plan(fake._fault_rng, fake.faults)
            if plan.delay > 0:
                await asyncio.sleep(plan.delay)
            limit = fake.faults.rate_limit
            if limit:
                wait = fake._limiter.check(auth, limit, fake.faults.rate_window)
                if wait is not None:
                    fault = "rate_limit"
                    fake.stats.faults[fault] += 1
                    headers = {"Retry-After": str(wait)} if fake.faults.rate_limit_retry_after else {}
                    await error(429, "Rate limit exceeded.", headers)(scope, receive, recording_send)
                    return
            if plan.kind is None:
                await apply(recording_send)
                return
            fault = plan.kind
            fake.stats.faults[fault] += 1
            await self._fault(plan, apply, swallow, scope, receive, recording_send)
        except ClientDisconnect:
            pass  # the client left before its body arrived: no answer (status None), and no traceback
        finally:
            fake.stats.record(
                RequestRecord(
                    method,
                    raw_path,
                    route.template if route else None,
                    status,
                    auth,
                    fault,
                    plan.when if plan is not None and fault not in (None, "rate_limit") else None,
                )
            )

    async def _fault(
        self,
        plan: Plan,
        apply: Callable[[Send], Awaitable[None]],
        swallow: Send,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        faults = self.fake.faults
        captured: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.body":
                captured.append(message.get("body", b""))

        kind = plan.kind
        if kind == "429":
            headers: dict[str, str] = {}
            if plan.choice >= faults.p_retry_after_missing:
                if plan.choice < faults.p_retry_after_missing + faults.p_retry_after_date:
                    headers["Retry-After"] = formatdate(self.fake._wall_clock() + faults.retry_after, usegmt=True)
                else:
                    headers["Retry-After"] = str(faults.retry_after)
            await error(429, "Too many requests.", headers)(scope, receive, send)
            return
        if kind == "503":
            await error(503, "The service is temporarily unavailable.")(scope, receive, send)
            return
        if plan.when == "after":
            await apply(capture if kind == "malformed" else swallow)
        if kind == "500":
            await error(500, "An error has occurred.")(scope, receive, send)
        elif kind == "502":
            await page("502 Bad Gateway", 502)(scope, receive, send)
        elif kind == "malformed":
            if plan.choice < 0.5:
                real = b"".join(captured)
                body = real[: len(real) // 2] if len(real) > 8 else b'{"Id": "'
                await Response(body, 200, media_type="application/json")(scope, receive, send)
            else:
                await page("Service maintenance")(scope, receive, send)
        elif kind == "drop":
            await self._drop(scope)
        elif kind == "hang":
            await self.fake._hang(faults.hang_seconds)
            await self._drop(scope)

    @staticmethod
    async def _drop(scope: Scope) -> None:
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
        if abort is None:
            raise ConnectionDropped("connection dropped by the fault plan")
        abort()
        await asyncio.sleep(0.01)  # let the server notice the socket is gone before the app returns

    async def _endpoint(self, request: Request) -> Response:
        route, params, path_known, auth = request.scope["intakeq_partner.fake"]
        try:
            if route is None:
                if path_known:
                    return error(405, "The requested method is not allowed for this resource.")
                if request.url.path.startswith("/api/"):
                    return error(404, "No such endpoint.")
                return page("Not found", 404)
            practice: Practice | None = None
            if route.auth == "partner" and auth != "partner":
                raise ApiError(401, "Authorization has been denied for this request.")
            if route.auth == "practice":
                if not auth.startswith("practice:"):
                    raise ApiError(401, "Authorization has been denied for this request.")
                practice = self.fake.state.practices[auth.removeprefix("practice:")]
            if route.operation is not None:
                check_query(route.operation, request.query_params)
            response: Response = await route.handler(Ctx(request, params, practice, route.operation))
            return response
        except ApiError as exc:
            return error(exc.status, exc.message)


_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _not_implemented(operation_id: str) -> Handler:
    async def handler(ctx: Ctx) -> Response:
        raise ApiError(501, f"This fake does not implement {operation_id} yet.")

    return handler


def _routes(fake: FakeIntakeQ) -> list[Route]:
    """Every endpoint of the partner document plus the web pages a browser would land on."""
    state = fake.state

    # ----- web pages

    async def sign_in(ctx: Ctx) -> Response:
        path = ctx.query("path")
        if path == "intake":
            path_key = ctx.query("pathKey")
            if path_key is None:
                raise ApiError(400, "pathKey is required when path is intake.")
            target = f"/intake/{path_key}"
        elif path in SSO_PATHS:
            target = SSO_PATHS[path]
        else:
            raise ApiError(400, f"Unknown path '{path}'.")
        session_id = state.sign_in(ctx.query("token"), ctx.query("userId"))
        response = RedirectResponse(target, status_code=302)
        response.set_cookie(SESSION_COOKIE, session_id, max_age=int(state.session_ttl.total_seconds()), httponly=True)
        return response

    def web_page(title: str) -> Handler:
        async def handler(ctx: Ctx) -> Response:
            if state.session(ctx.request.cookies.get(SESSION_COOKIE)) is None:
                return page("Sign-in required", 401)
            return page(title)

        return handler

    async def intake_page(ctx: Ctx) -> Response:
        intake_id = ctx.params["intakeId"]
        token = ctx.query("auth")
        if token is not None:
            try:
                intake = state.check_form_token(intake_id, token)
            except ApiError:
                return page("This form link has expired", 401)
            return page(f"{intake.questionnaire.name} for {intake.client.name or 'client'}")
        session = state.session(ctx.request.cookies.get(SESSION_COOKIE))
        if session is None:
            return page("Sign-in required", 401)
        intake_found = state.practices[session.practice_id].intakes.get(intake_id)
        return page(f"Intake {intake_id}" if intake_found else "Intake not found", 200 if intake_found else 404)

    handlers = api_handlers(fake)
    # One route per operation of the spec, from its generated module; one the fake lacks answers 501 by name.
    routes = [
        Route(
            op.METHOD,
            op.PATH_TEMPLATE,
            op.KEY_SCOPE,
            handlers.get(op_id, _not_implemented(op_id)),
            op,
            op_id in handlers,
        )
        for op_id, op in OPERATIONS.items()
    ]
    routes += [
        Route("GET", "/signin/authenticate", "none", sign_in),
        Route("GET", "/intake/{intakeId}", "none", intake_page),
    ]
    routes += [Route("GET", target, "none", web_page(target.strip("/").title())) for target in SSO_PATHS.values()]
    return routes


def classify(partner_key: str, key: str | None, state: State) -> str:
    """Name the key class of a request without keeping the key.

    Practice keys are found through the state's key index (a dict lookup, O(1) however many practices there
    are), which is not constant-time the way comparing with `hmac.compare_digest` is; a test double need not
    resist timing attacks.
    """
    if not key:
        return "none"
    if hmac.compare_digest(key.encode(), partner_key.encode()):
        return "partner"
    practice = state.practice_by_key(key)
    return "invalid" if practice is None else f"practice:{practice.id}"
