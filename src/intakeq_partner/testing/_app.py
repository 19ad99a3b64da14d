"""The HTTP face of the fake: routing on the raw path, auth, faults, and the handlers.

Routing matches the percent-encoded path one segment at a time, so an external ID such as ``a/b?c d``
(sent as ``a%2Fb%3Fc%20d``) stays one path parameter, as it does on the real service.
"""

from __future__ import annotations

import asyncio
import hmac
import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Message, Receive, Scope, Send

from .._generated.operations import OPERATIONS
from ._faults import Plan, RequestRecord, draw_plan
from ._requests import check_query, read_body
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


def ok() -> Response:
    return Response(status_code=200)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"Message": message}, status_code=status, headers=headers)


def page(title: str, status: int = 200) -> Response:
    text = html.escape(title)
    return HTMLResponse(
        f"<!doctype html><html><head><title>{text}</title></head><body><h1>{text}</h1></body></html>", status
    )


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
                    await error(429, "Rate limit exceeded.", {"Retry-After": str(wait)})(scope, receive, recording_send)
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


def _int_query(ctx: Ctx, name: str) -> int | None:
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


def _not_implemented(operation_id: str) -> Handler:
    async def handler(ctx: Ctx) -> Response:
        raise ApiError(501, f"This fake does not implement {operation_id} yet.")

    return handler


def _routes(fake: FakeIntakeQ) -> list[Route]:
    """Every endpoint of the partner document plus the web pages a browser would land on."""
    state = fake.state

    def base(ctx: Ctx) -> str:
        return str(ctx.request.base_url).rstrip("/")

    # ----- partner scope

    async def master_forms(ctx: Ctx) -> Response:
        return JSONResponse([f.to_wire() for f in state.master_forms.values()])

    async def list_practices(ctx: Ctx) -> Response:
        found = state.list_practices(
            ctx.query("id"),
            ctx.query("email"),
            ctx.query("externalPracticeId"),
            _int_query(ctx, "page"),
            fake.page_size,
        )
        return JSONResponse([p.to_wire(state.stamp) for p in found])

    async def create_practice(ctx: Ctx) -> Response:
        return JSONResponse(state.create_practice(await ctx.body()).to_wire(state.stamp))

    async def update_practice(ctx: Ctx) -> Response:
        return JSONResponse(state.update_practice(await ctx.body()).to_wire(state.stamp))

    async def delete_practice(ctx: Ctx) -> Response:
        state.delete_practice(state.practice(ctx.params["practiceId"]))
        return ok()

    async def practice_key(ctx: Ctx) -> Response:
        return JSONResponse({"ApiKey": state.practice(ctx.params["practiceId"]).key})

    async def ephemeral(ctx: Ctx) -> Response:
        practice = state.practice(ctx.params["practiceId"])
        value, token = state.issue_ephemeral_token(practice, ctx.query("userId"))
        return JSONResponse({"Token": value, "UserId": token.user_id})

    async def practice_forms(ctx: Ctx) -> Response:
        return JSONResponse([f.to_wire() for f in state.practice(ctx.params["practiceId"]).forms.values()])

    async def copy_form(ctx: Ctx) -> Response:
        return JSONResponse(state.copy_form(await ctx.body()).to_wire())

    # ----- practice scope (v1)

    async def list_practitioners(ctx: Ctx) -> Response:
        everyone = (ctx.query("includeInactive") or "false").lower() == "true"  # its type was checked
        found = [p for p in ctx.own_practice.practitioners.values() if everyone or not p.is_inactive]
        found = state.page_of(found, _int_query(ctx, "page"), fake.page_size)
        return JSONResponse([p.to_wire(state.stamp) for p in found])

    async def create_practitioner(ctx: Ctx) -> Response:
        return JSONResponse(state.create_practitioner(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    async def update_practitioner(ctx: Ctx) -> Response:
        return JSONResponse(state.update_practitioner(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    def practitioner_flag(inactive: bool) -> Handler:
        async def handler(ctx: Ctx) -> Response:
            state.practitioner(ctx.own_practice, ctx.params["practitionerId"]).is_inactive = inactive
            return ok()

        return handler

    async def delete_practitioner(ctx: Ctx) -> Response:
        practice = ctx.own_practice
        state.delete_practitioner(practice, state.practitioner(practice, ctx.params["practitionerId"]))
        return ok()

    def transfer(data: bool) -> Handler:
        async def handler(ctx: Ctx) -> Response:
            practice = ctx.own_practice
            source = state.practitioner(practice, ctx.params["sourcePractitionerId"])
            destination = state.practitioner(practice, ctx.params["destinationPractitionerId"])
            state.transfer(practice, source, destination, data)
            return ok()

        return handler

    async def list_assistants(ctx: Ctx) -> Response:
        found = state.page_of(list(ctx.own_practice.assistants.values()), _int_query(ctx, "page"), fake.page_size)
        return JSONResponse([a.to_wire(state.stamp) for a in found])

    async def create_assistant(ctx: Ctx) -> Response:
        return JSONResponse(state.create_assistant(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    async def update_assistant(ctx: Ctx) -> Response:
        return JSONResponse(state.update_assistant(ctx.own_practice, await ctx.body()).to_wire(state.stamp))

    async def delete_assistant(ctx: Ctx) -> Response:
        assistant = state.assistant(ctx.own_practice, ctx.params["assistantId"])
        del ctx.own_practice.assistants[assistant.id]
        return ok()

    async def create_intake(ctx: Ctx) -> Response:
        return JSONResponse(state.create_intake(ctx.own_practice, await ctx.body(), base(ctx)).to_wire(state.stamp))

    async def intake_token(ctx: Ctx) -> Response:
        intake_id = ctx.params["intakeId"]
        value, token = state.form_token(ctx.own_practice, intake_id)
        url = f"{base(ctx)}/intake/{intake_id}"
        return JSONResponse({"Token": value, "Url": url, "Expiration": state.stamp(token.expires, "iso")})

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

    handlers: dict[str, Handler] = {
        "list_master_forms": master_forms,
        "list_practices": list_practices,
        "create_practice": create_practice,
        "update_practice": update_practice,
        "copy_form": copy_form,
        "delete_practice": delete_practice,
        "get_practice_api_key": practice_key,
        "get_ephemeral_token": ephemeral,
        "list_practice_forms": practice_forms,
        "list_practitioners": list_practitioners,
        "create_practitioner": create_practitioner,
        "update_practitioner": update_practitioner,
        "disable_practitioner": practitioner_flag(True),
        "enable_practitioner": practitioner_flag(False),
        "delete_practitioner": delete_practitioner,
        "transfer_practitioner_data": transfer(True),
        "transfer_client_ownership": transfer(False),
        "list_assistants": list_assistants,
        "create_assistant": create_assistant,
        "update_assistant": update_assistant,
        "delete_assistant": delete_assistant,
        "create_intake": create_intake,
        "create_intake_token": intake_token,
    }
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
