"""A FastAPI backend on intakeq-partner: one PartnerClient for the app's life, an endpoint that onboards a
practice, and the form notification URL that IntakeQ puts in the emails it sends to practice staff.

Try it against the fake IntakeQ (needs `pip install 'intakeq-partner[testing]' fastapi uvicorn`):

    python -m intakeq_partner.testing --port 8765        # in one terminal; export the two lines it prints
    uvicorn examples.backend.app:app --port 8000          # in another

In IntakeQ's white-label settings, the form notification URL would be https://<your backend>/intake/[form-id].
Sign-in here is a stand-in (`POST /login` sets a session cookie): replace `signed_in_user` with your own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from intakeq_partner import (
    ConflictError,
    IntakeQError,
    InvalidRequestError,
    NotFoundError,
    PartnerClient,
    RateLimits,
    sso_url,
    to_dict,
)

SSO_HOST_ENV = "INTAKEQ_SSO_HOST"  # your white-labelled forms host, e.g. forms.example.com
SESSION_COOKIE = "session"
ONBOARDING_FORMS = ("Intake Form",)  # master forms every new practice gets


@dataclass(frozen=True)
class User:
    """Someone signed in to this backend, and who they are in IntakeQ (external IDs this backend chose)."""

    practice: str
    practitioner: str | None  # None: the practice's main user


class Onboarding(BaseModel):
    external_practice_id: str
    practice_name: str
    first_name: str
    last_name: str
    email: str


class Login(BaseModel):
    practice: str
    practitioner: str | None = None


def partner_client(request: Request) -> PartnerClient:
    """The app's one PartnerClient, made by the lifespan."""
    partner: PartnerClient = request.app.state.partner
    return partner


def signed_in_user(request: Request, session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None) -> User:
    """Stand-in authentication: the user behind the session cookie, or 401."""
    user: User | None = request.app.state.sessions.get(session or "")
    if user is None:
        raise HTTPException(status_code=401, detail="sign in first")
    return user


Partner = Annotated[PartnerClient, Depends(partner_client)]
SignedIn = Annotated[User, Depends(signed_in_user)]
router = APIRouter()


@router.post("/practices", status_code=201)
async def onboard(body: Onboarding, partner: Partner, request: Request) -> dict[str, Any]:
    """Create the practice, or find it, and give it the onboarding forms it lacks; the answer is the practice
    as plain data. Safe to repeat, and to call concurrently for one practice.

    No look-up first: a create with an external ID is idempotent (README, "Creates"). Concurrent onboardings
    of one practice share one request; one that finds the practice made before, with these details, gets it
    back. Made before with other details: ConflictError carries IntakeQ's, which this example keeps.
    """
    try:
        practice = await partner.practices.create(**body.model_dump())
    except ConflictError as exc:
        if exc.existing is None:
            raise  # a conflict about something else: intakeq_failed answers 409
        practice = exc.existing
    # Copying a form is not idempotent: onboardings of one practice copy in turn, so each copy is seen by the
    # next one's look at the forms. (Across worker processes this takes a lock they share, e.g. in Redis.)
    async with _lock(request.app.state.onboarding, practice.id):
        masters = {form.name: form for form in await partner.forms.master()}
        present = {form.name for form in await partner.forms.list(practice.id)}
        for name in ONBOARDING_FORMS:
            if name not in present and name in masters:
                await partner.forms.copy(source_master_form_id=masters[name].id, practice=practice.id)
    return to_dict(practice)


def _lock(locks: weakref.WeakValueDictionary[str, asyncio.Lock], key: str) -> asyncio.Lock:
    """The lock of `key`, made on first use and gone once no request holds or waits for it."""
    lock = locks.get(key)
    if lock is None:
        lock = locks[key] = asyncio.Lock()
    return lock


@router.post("/login")
async def login(body: Login, request: Request) -> JSONResponse:
    """Stand-in sign-in for the example: remembers who the caller is behind a session cookie."""
    session = secrets.token_urlsafe(24)
    request.app.state.sessions[session] = User(body.practice, body.practitioner)
    response = JSONResponse({"signed_in": True})
    response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="lax")
    return response


@router.get("/intake/{form_id}")
async def open_intake(form_id: str, user: SignedIn, partner: Partner, request: Request) -> RedirectResponse:
    """The form notification URL: the user is signed in here, so sign them in to IntakeQ, on that form."""
    token = await partner.practices.ephemeral_token(user.practice, user_id=user.practitioner)
    url = sso_url(request.app.state.sso_host, token, path="intake", path_key=form_id)
    return RedirectResponse(url, status_code=303)


async def intakeq_failed(request: Request, exc: Exception) -> JSONResponse:
    """IntakeQ's refusal, told to our caller without IntakeQ's own details."""
    if isinstance(exc, InvalidRequestError):
        return JSONResponse({"detail": str(exc)}, status_code=422)
    if isinstance(exc, NotFoundError):
        return JSONResponse({"detail": "not found in IntakeQ"}, status_code=404)
    if isinstance(exc, ConflictError):
        return JSONResponse({"detail": "IntakeQ reports a conflict (an email already in use?)"}, status_code=409)
    return JSONResponse({"detail": "IntakeQ refused or failed the request"}, status_code=502)


def client_from_environment() -> PartnerClient:
    """The process's PartnerClient: key and URL from $INTAKEQ_PARTNER_KEY and $INTAKEQ_BASE_URL; per-key budgets
    from $INTAKEQ_RATE and $INTAKEQ_PRACTICE_RATE (e.g. "10/minute, 500/day"), shared with every worker process
    through $INTAKEQ_REDIS_URL when it is set (README: "Running many workers")."""
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    limits = RateLimits(
        partner=os.environ.get("INTAKEQ_RATE", ""),
        practice=os.environ.get("INTAKEQ_PRACTICE_RATE", ""),
        redis_url=os.environ.get("INTAKEQ_REDIS_URL") or None,
        fallback_share=1 / max(1, workers),  # each worker's part of a budget while Redis is unreachable
    )
    return PartnerClient(limits=limits)


def create_app(
    make_client: Callable[[], PartnerClient] = client_from_environment, sso_host: str | None = None
) -> FastAPI:
    """The app. `make_client` builds the one PartnerClient (default: `client_from_environment`); `sso_host`
    defaults to $INTAKEQ_SSO_HOST, else the client's base URL (right for the fake)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for the whole process: its pool, key cache and limits serve every request.
        async with make_client() as partner:
            app.state.partner = partner
            app.state.sso_host = sso_host or os.environ.get(SSO_HOST_ENV) or partner.base_url
            app.state.sessions = {}
            app.state.onboarding = weakref.WeakValueDictionary()  # practice Id -> lock (see onboard)
            yield

    app = FastAPI(title="intakeq-partner backend example", lifespan=lifespan)
    app.include_router(router)
    app.add_exception_handler(IntakeQError, intakeq_failed)
    return app


app = create_app()
