"""PartnerClient: the partner-key side of the API (practices, their keys and tokens, master forms).

Every call here is sent with the partner key and nothing else. Practice-scoped calls go through the
PracticeClient that `PartnerClient.practice()` hands out, which fetches and caches that practice's key.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Unpack

from . import events
from ._base import AsyncCloseable
from ._compat import became_positional, reference_first, renamed_arguments, was_positional
from ._constants import PARTNER_KEY_ENV
from ._creates import ExternalKey, differences
from ._errors import InvalidRequestError, NotFoundError, ResponseValidationError
from ._generated.api.forms import copy_form, list_master_forms, list_practice_forms
from ._generated.api.practices import (
    create_practice,
    delete_practice,
    get_ephemeral_token,
    get_practice_api_key,
    list_practices,
    update_practice,
)
from ._generated.models import (
    CopyFormRequest,
    EphemeralToken,
    FormTemplate,
    Practice,
    PracticeCreate,
    PracticeUpdate,
)
from ._keys import DEFAULT_KEY_CACHE_SIZE, PracticeKeyCache, check_bounds
from ._keystore import KeyStore, StoredKeys
from ._paging import collect, walk
from ._secret import Secret
from ._sender import RequestsAnything, Sender, SendWithKey
from ._transport import SendOptions, Transport, TransportOptions
from ._validate import exactly_one, flag, optional_string, optional_text, page_number, text
from .practice import PracticeClient, _check_current

# The optional fields IntakeQ's practice answer carries whether set or not (the document's example): None
# there means the practice has none. (A practice always has its names and email: None there is "not reported".)
PRACTICE_REPORTED = frozenset({"StreetAddress", "City", "State", "PostalCode", "FormsEnabled", "BookingEnabled"})


class Practices:
    """Create, find, update and delete practices; fetch their keys and single-sign-on tokens."""

    def __init__(self, sender: Sender, on_delete: Callable[[str], None]) -> None:
        self._sender = sender
        self._on_delete = on_delete  # drops the deleted practice's cached key

    async def create(
        self,
        *,
        practice_name: str,
        first_name: str,
        last_name: str,
        email: str,
        external_practice_id: str | None = None,
        external_practitioner_id: str | None = None,
        street_address: str | None = None,
        city: str | None = None,
        state: str | None = None,
        postal_code: str | None = None,
        forms_enabled: bool | None = None,
        booking_enabled: bool | None = None,
    ) -> Practice:
        """Create a practice and its main user.

        With an external ID the create is idempotent: repeat it, concurrently, from several processes, after an
        answer that was lost or unreadable, and there is still one practice. When IntakeQ already holds a
        practice with that ID (a 409, or an attempt whose outcome is unknown), it is looked up: the same as
        asked on the fields you set (as IntakeQ stores them), it is returned as if created; different,
        ConflictError carries it as `existing`. Concurrent creates with one ID through this client share one
        request.
        """
        body = PracticeCreate(
            practice_name=text("practice_name", practice_name),
            first_name=text("first_name", first_name),
            last_name=text("last_name", last_name),
            email=text("email", email),
            external_practice_id=optional_text("external_practice_id", external_practice_id),
            external_practitioner_id=optional_text("external_practitioner_id", external_practitioner_id),
            street_address=optional_string("street_address", street_address),
            city=optional_string("city", city),
            state=optional_string("state", state),
            postal_code=optional_string("postal_code", postal_code),
            forms_enabled=flag("forms_enabled", forms_enabled),
            booking_enabled=flag("booking_enabled", booking_enabled),
        )
        ref = body.external_practice_id
        key = None
        if ref is not None:

            async def same(found: Practice) -> list[str]:
                return differences(body, found, PRACTICE_REPORTED)

            find = functools.partial(self._find, external_practice_id=ref)
            key = ExternalKey("practice", "ExternalPracticeId", ref, find, same)
        return await self._sender.create_once(
            lambda: create_practice.asyncio(self._sender, body=body), key, path=create_practice.PATH
        )

    @reference_first("external_practice_id")
    async def update(
        self,
        ref: str | None = None,
        /,
        *,
        external_practice_id: str | None = None,
        practice_name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        street_address: str | None = None,
        city: str | None = None,
        state: str | None = None,
        postal_code: str | None = None,
        forms_enabled: bool | None = None,
        booking_enabled: bool | None = None,
        current: Practice | None = None,
    ) -> Practice:
        """Change the practice with Id or external ID `ref` (the Id wins, as in `get`): pass only what changes.
        `external_practice_id=` sets a new external ID (how a practice made elsewhere joins your records).

        The document does not say whether IntakeQ keeps or clears what an update leaves out, so this reads the
        practice first and sends every field, changed or not (`current`: the practice as you just read it,
        which saves that read). Nothing is sent when the read fails or finds nothing (NotFoundError).
        """
        if ref is None:
            raise InvalidRequestError("name the practice to update first: update(ref, ...), its Id or external ID")
        wanted = text("ref", ref)
        changes = {
            "external_practice_id": optional_text("external_practice_id", external_practice_id),
            "practice_name": optional_text("practice_name", practice_name),
            "first_name": optional_text("first_name", first_name),
            "last_name": optional_text("last_name", last_name),
            "email": optional_text("email", email),
            "street_address": optional_string("street_address", street_address),
            "city": optional_string("city", city),
            "state": optional_string("state", state),
            "postal_code": optional_string("postal_code", postal_code),
            "forms_enabled": flag("forms_enabled", forms_enabled),
            "booking_enabled": flag("booking_enabled", booking_enabled),
        }
        _check_current("current", current, Practice)

        async def read() -> Practice | None:
            return await self._get(wanted)

        return await self._sender.update_whole(
            lambda body: update_practice.asyncio(self._sender, body=body),
            PracticeUpdate,
            path=update_practice.PATH,
            what="practice",
            ref=wanted,
            read=read,
            changes=changes,
            current=current,
        )

    async def list(self, *, page: int | None = None) -> list[Practice]:
        """Every practice of the partner (walking IntakeQ's pages, see `iter`), or one 1-based `page` of them.

        The whole walk is one call: call_timeout bounds all of it."""
        if page is not None:
            return await list_practices.asyncio(self._sender, page=page_number(page))
        return await self._sender.whole(collect(self._walk()), "GET", list_practices.PATH)

    async def iter(self) -> AsyncIterator[Practice]:
        """Every practice of the partner, one at a time, fetching a page at a time.

        The document says a call without parameters returns all practices, yet IntakeQ's own client pages this
        list and its other lists stop at 100 records a call. So this walks `page=1, 2, ...` and stops at an
        empty page, a page shorter than the longest before it, or a page with nothing new (a server that ignores
        `page` and answers everything every time). Each practice comes once, even when pages overlap.

        Your code runs between pages, so call_timeout bounds each page fetch, not the walk; `list()` bounds it all.
        """
        async with contextlib.aclosing(self._walk()) as practices:
            async for practice in practices:
                yield practice

    def _walk(self) -> AsyncGenerator[Practice, None]:
        async def fetch(page: int) -> list[Practice]:
            return await list_practices.asyncio(self._sender, page=page)

        return walk(fetch)

    @became_positional("id", "external_practice_id")
    async def get(self, ref: str | None = None, /, *, email: str | None = None) -> Practice | None:
        """The practice with Id or external ID `ref` (the Id wins, as everywhere in IntakeQ), or the one with
        `email`; None when there is none. Give one of the two.

        Answers are checked: a server that ignored the filter (answering a list without the match) is searched
        page by page instead, so a lookup never returns another practice. call_timeout bounds all of it.
        """
        if (ref is None) == (email is None):
            raise InvalidRequestError("give exactly one of: ref (an Id or external ID), email")
        if email is not None:
            return await self._sender.whole(self._find(email=email), "GET", list_practices.PATH)
        return await self._sender.whole(self._get(text("ref", ref)), "GET", list_practices.PATH)

    async def _get(self, wanted: str) -> Practice | None:
        found = await list_practices.asyncio(self._sender, id=wanted)
        match = next((p for p in found if p.id == wanted), None)
        if match is not None:
            return match
        if not found:  # the server filters: ask again by external ID
            found = await list_practices.asyncio(self._sender, external_practice_id=wanted)
            match = next((p for p in found if p.external_practice_id == wanted), None)
            if match is not None or not found:
                return match
        # A server that ignored a filter: look through every practice once, an Id match winning.
        by_external_id = None
        async with contextlib.aclosing(self._walk()) as practices:
            async for practice in practices:
                if practice.id == wanted:
                    return practice
                if by_external_id is None and practice.external_practice_id == wanted:
                    by_external_id = practice
        return by_external_id

    async def _find(
        self, *, id: str | None = None, email: str | None = None, external_practice_id: str | None = None
    ) -> Practice | None:
        """The practice matching exactly one of the list call's filters, or None."""
        name = exactly_one(id=id, email=email, external_practice_id=external_practice_id)
        wanted = text(
            "ref" if name != "email" else name,
            {"id": id, "email": email, "external_practice_id": external_practice_id}[name],
        )

        def matches(practice: Practice) -> bool:
            value = getattr(practice, name)
            return value == wanted or (name == "email" and (value or "").casefold() == wanted.casefold())

        found = await list_practices.asyncio(
            self._sender,
            id=wanted if name == "id" else None,
            email=wanted if name == "email" else None,
            external_practice_id=wanted if name == "external_practice_id" else None,
        )
        match = next((p for p in found if matches(p)), None)
        if match is None and found:
            async with contextlib.aclosing(self._walk()) as practices:
                async for practice in practices:
                    if matches(practice):
                        return practice
        return match

    async def delete(self, practice: str, *, missing_ok: bool = False) -> None:
        """Delete a practice (by Id or external ID). `missing_ok` makes a repeated delete succeed."""
        try:
            await delete_practice.asyncio(self._sender, text("practice", practice))
        except NotFoundError:
            if not missing_ok:
                raise
        finally:
            self._on_delete(practice)

    async def api_key(self, practice: str) -> str:
        """The practice's own API key. Prefer `PartnerClient.practice()`, which fetches and caches it for you."""
        return (await fetch_practice_key(self._sender, practice)).reveal()

    @was_positional("user_id")
    async def ephemeral_token(self, practice: str, *, user_id: str | None = None) -> EphemeralToken:
        """A single-use sign-in token for a practice user (default: its main user); see `sso_url`."""
        return await get_ephemeral_token.asyncio(
            self._sender, text("practice", practice), user_id=optional_text("user_id", user_id)
        )


async def fetch_practice_key(sender: Sender, practice: str) -> Secret:
    """A practice's key, fetched with the partner key (what `Practices.api_key` and the key cache both use)."""
    ref = text("practice", practice)
    answer = await get_practice_api_key.asyncio(sender, ref)
    try:
        return Secret(answer.api_key)
    except InvalidRequestError as exc:  # e.g. an empty key: the server's fault, not the caller's
        reason = str(exc)
    # Raised out here, with the answer dropped: no local or chained traceback keeps the refused key.
    del answer
    request = get_practice_api_key.build_request(ref)
    raise ResponseValidationError(
        status_code=200, method=request.method, path=request.path, body_excerpt="", reason=reason
    )


async def _fetch_and_tell(sender: Sender, practice: str) -> Secret:
    """fetch_practice_key, reported to the current call's listeners (events.KeyFetched)."""
    started = time.monotonic()
    key = await fetch_practice_key(sender, practice)
    await events.key_fetched(practice, time.monotonic() - started)
    return key


class Forms:
    """The partner's master forms, a practice's forms, and copying one into the other."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def master(self) -> list[FormTemplate]:
        """The form templates of the partner's master account."""
        return await list_master_forms.asyncio(self._sender)

    async def list(self, practice: str) -> list[FormTemplate]:
        """The form templates a practice has (by Id or external ID)."""
        return await list_practice_forms.asyncio(self._sender, text("practice", practice))

    @renamed_arguments(destination_practice="practice")
    async def copy(
        self, *, source_master_form_id: str, practice: str, copy_attached_consent_forms: bool = False
    ) -> FormTemplate:
        """Copy a master form (and optionally its consent forms) into a practice (Id or external ID). Not retried
        when in doubt."""
        body = CopyFormRequest(
            source_master_form_id=text("source_master_form_id", source_master_form_id),
            destination_practice_id=text("practice", practice),
            copy_attached_consent_forms=flag("copy_attached_consent_forms", copy_attached_consent_forms),
        )
        return await copy_form.asyncio(self._sender, body=body)


class PartnerClient(AsyncCloseable, RequestsAnything):
    """The IntakeQ partner API. One per process is right: it holds the connection pool and the limits.

    `partner_key` defaults to $INTAKEQ_PARTNER_KEY and `base_url` to $INTAKEQ_BASE_URL or intakeq.com.
    Options (timeout, retries, max_concurrency, rate_limit, http_stack, http_client or transport,
    strict_responses) are shared by every PracticeClient this client hands out. Practice keys are cached: at
    most `key_cache_size` of them (the least recently used goes first) and, with `key_ttl`, none older than
    that many seconds; a key that leaves the cache is fetched again when next needed. `key_store` (opt-in)
    supplies keys before they are fetched, and keeps the fetched ones: a callable (practice -> key or None) or
    an object with `get`, `put` and `discard`; a stored key is trusted until it is refused once (`_keystore.py`).
    `strict_responses=True` fails a call on any answer field that does not fit its declared type; by default such
    a field is read tolerantly (left None, its value kept in the model's `additional_properties`; README:
    "Surprising answers").
    """

    practices: Practices
    forms: Forms

    def __init__(
        self,
        partner_key: str | None = None,
        *,
        base_url: str | None = None,
        key_cache_size: int = DEFAULT_KEY_CACHE_SIZE,
        key_ttl: float | None = None,
        key_store: KeyStore | Callable[[str], str | None] | None = None,
        **options: Unpack[TransportOptions],
    ) -> None:
        key = partner_key if partner_key is not None else os.environ.get(PARTNER_KEY_ENV)
        if not key:
            raise InvalidRequestError(f"no partner key: pass partner_key= or set ${PARTNER_KEY_ENV}")
        check_bounds(key_cache_size, key_ttl)
        transport = Transport(base_url=base_url or None, **options)
        self._setup(
            Secret(text("partner_key", key)), transport, keys=None, bounds=(key_cache_size, key_ttl), store=key_store
        )

    def _setup(
        self,
        key: Secret,
        transport: Transport,
        keys: PracticeKeyCache | None,
        bounds: tuple[int, float | None] = (DEFAULT_KEY_CACHE_SIZE, None),
        store: KeyStore | Callable[[str], str | None] | None = None,
    ) -> None:
        self._key = key
        self._transport = transport
        sender = Sender(transport, "partner", self._with_partner_key, owner="partner")
        self._sender = sender
        self.practices = Practices(sender, on_delete=self.forget_practice_key)
        self.forms = Forms(sender)
        if keys is None:
            # The fetch is shared by every caller waiting for the key, so it runs under no caller's call_timeout
            # (this client's included): each waiter's own deadline ends its wait, not the fetch (see _keys.py).
            # A fetch they all gave up on finishes and fills the cache, bounded by attempt_timeout and the
            # retries; aclose() ends it.
            shared = Sender(transport.with_options(call_timeout=None), "partner", self._with_partner_key, "partner")
            fetch: Callable[[str], Awaitable[Secret]] = functools.partial(_fetch_and_tell, shared)
            if store is not None:
                fetch = StoredKeys(store, fetch)
            keys = PracticeKeyCache(fetch, size=bounds[0], ttl=bounds[1])
        self._keys = keys

    def with_options(self, **options: Unpack[SendOptions]) -> PartnerClient:
        """This client with other send options: `timeout`, `max_retries`, `initial_delay`, `max_delay`,
        `attempt_timeout`, `call_timeout`, `max_response_size`.

        The copy shares this client's connection pool, concurrency and rate limits and practice-key cache, and
        so do the practice clients it hands out; this client keeps its own options. It is cheap (make one per
        call if you like) and closing it closes nothing: the pool belongs to this client.
        """
        view = PartnerClient.__new__(PartnerClient)
        view._setup(self._key, self._transport.with_options(**options), self._keys)
        return view

    @property
    def options(self) -> SendOptions:
        """The send options in force (what `with_options` changes)."""
        return self._transport.options

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def http_stack(self) -> str:
        """Which HTTP stack sends: "aiohttp" (the `fast` extra, picked automatically when installed), "httpx",
        or "custom" (your own http_client or transport). Choose with `http_stack="aiohttp"` or `"httpx"`."""
        return self._transport.http_stack

    def __repr__(self) -> str:
        return f"PartnerClient(base_url={self.base_url!r}, http_stack={self.http_stack!r})"

    async def _with_partner_key(self, send: SendWithKey) -> Any:
        return await send(self._key)

    def practice(self, practice: str) -> PracticeClient:
        """A client for one practice's v1 endpoints (by Id or external ID), sharing this client's pool and limits.

        The practice key is fetched on first use, once even under concurrency, cached, and refetched once if
        IntakeQ refuses it (a rotated key).
        """
        # Cheap to make (the key cache and the pool are shared), so nothing per practice is kept but its key.
        return PracticeClient._bound(self._transport, text("practice", practice), self._keys)

    def forget_practice_key(self, practice: str) -> None:
        """Drop a cached practice key (after deleting the practice, say)."""
        self._keys.drop(practice)

    async def aclose(self) -> None:
        """Close the connection pool (not a user's own http_client)."""
        await self._transport.aclose()
