"""PracticeClient: the practice-key side of the API (practitioners, assistants, intake forms).

Every call here is sent with one practice's key. Made by `PartnerClient.practice()`, it fetches that key
with the partner key on first use and shares the partner client's pool and limits; made directly with
`practice_key=`, it suits a backend that already stores practice keys.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Protocol, TypeVar, Unpack

from ._base import AsyncCloseable
from ._compat import reference_first, renamed_arguments, was_positional
from ._constants import PRACTICE_KEY_ENV
from ._creates import ExternalKey, differences
from ._errors import InvalidRequestError, NotFoundError, ResponseValidationError
from ._generated.api.assistants import (
    create_assistant,
    delete_assistant,
    list_assistants,
    update_assistant,
)
from ._generated.api.intakes import create_intake, create_intake_token
from ._generated.api.practitioners import (
    create_practitioner,
    delete_practitioner,
    disable_practitioner,
    enable_practitioner,
    list_practitioners,
    transfer_client_ownership,
    transfer_practitioner_data,
    update_practitioner,
)
from ._generated.models import (
    Assistant,
    AssistantCreate,
    AssistantUpdate,
    Intake,
    IntakeCreate,
    Practitioner,
    PractitionerCreate,
    PractitionerUpdate,
)
from ._keys import PracticeKeyCache, call_with_key
from ._paging import V1_PAGE_SIZE, collect, walk
from ._secret import Secret
from ._sender import KeyRunner, RequestsAnything, Sender, SendWithKey
from ._transport import SendOptions, Transport, TransportOptions
from ._validate import flag, id_list, optional_text, page_number, text
from .tokens import FormToken


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


M = TypeVar("M", bound=_Identified)


def _find(items: Iterable[M], ref: str, external: Callable[[M], str | None]) -> M | None:
    """The item whose Id, or else whose external ID, is `ref` (the API's own lookup order)."""
    items = list(items)
    return next((i for i in items if i.id == ref), None) or next((i for i in items if external(i) == ref), None)


def _client_id(value: object) -> int | None:
    """IntakeQ's numeric client ID: an int (not a bool, not text), positive, and fitting the wire's int64."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"client_id must be an int, not {type(value).__name__}")
    if not 0 < value < 2**63:
        raise InvalidRequestError("client_id must be a positive 64-bit int")
    return value


def _check_intake_client(
    client_id: int | None, client_name: object, client_email: object, client_phone: object
) -> None:
    """The document's rule for naming an intake's client, checked before sending.

    ClientId alone is enough. Without it, ClientName is needed, and so is ClientEmail unless ClientPhone is
    given. ExternalClientId is never enough on its own: the document offers it in place of ClientId, which may
    mean finding an existing client by it or tagging a new one with it; name plus email or phone works under both.
    """
    if client_id is not None:
        return
    if client_name is None:
        raise InvalidRequestError(
            "without ClientId (client_id), IntakeQ needs ClientName (client_name) and ClientEmail or ClientPhone"
        )
    if client_email is None and client_phone is None:
        raise InvalidRequestError(
            "without ClientId (client_id) or ClientPhone (client_phone), IntakeQ needs ClientEmail (client_email)"
        )


def _reader(
    what: str,
    listing: Callable[[], Awaitable[list[M]]],
    ref: str | None,
    id_of: Callable[[M], str | None],
    external_id_of: Callable[[M], str | None],
) -> tuple[str, Callable[[], Awaitable[M | None]]]:
    """How an update finds its object: the one whose Id is `ref`, else the one whose external ID is (the Id wins,
    as in `get`). Returns the checked reference and the read that finds it in `listing()`."""
    if ref is None:
        raise InvalidRequestError(f"name the {what} to update first: update(ref, ...), its Id or external ID")
    wanted = text("ref", ref)

    async def read() -> M | None:
        found = await listing()
        by_id = next((item for item in found if id_of(item) == wanted), None)
        return by_id if by_id is not None else next((i for i in found if external_id_of(i) == wanted), None)

    return wanted, read


def _check_current(name: str, value: object, cls: type) -> None:
    if value is not None and not isinstance(value, cls):
        raise InvalidRequestError(f"{name} must be a {cls.__name__}, not {type(value).__name__}")


class Practitioners:
    """A practice's practitioners. Any `practitioner` argument takes the Id or the external ID."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def create(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str,
        role_name: str | None = None,
        external_practitioner_id: str | None = None,
    ) -> Practitioner:
        """Add a practitioner. With an external ID the create is idempotent, as `practices.create` is: a
        practitioner already holding it is returned when it is the same on the fields you set, else
        ConflictError carries it as `existing`."""
        body = PractitionerCreate(
            first_name=text("first_name", first_name),
            last_name=text("last_name", last_name),
            email=text("email", email),
            role_name=optional_text("role_name", role_name),
            external_practitioner_id=optional_text("external_practitioner_id", external_practitioner_id),
        )
        ref = body.external_practitioner_id
        key = None
        if ref is not None:

            async def find() -> Practitioner | None:
                found = await self.list(include_inactive=True)
                return next((p for p in found if p.external_practitioner_id == ref), None)

            async def same(found: Practitioner) -> list[str]:
                return differences(body, found)

            key = ExternalKey("practitioner", "ExternalPractitionerId", ref, find, same)
        return await self._sender.create_once(
            lambda: create_practitioner.asyncio(self._sender, body=body), key, path=create_practitioner.PATH
        )

    @reference_first("external_practitioner_id")
    async def update(
        self,
        ref: str | None = None,
        /,
        *,
        external_practitioner_id: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        role_name: str | None = None,
        current: Practitioner | None = None,
    ) -> Practitioner:
        """Change the practitioner with Id or external ID `ref` (the Id wins): pass only what changes, its name,
        email or role; `external_practitioner_id=` sets a new external ID (e.g. for a practice's main user).

        The practitioner is read first and every field is sent, changed or not, since IntakeQ may clear what
        an update leaves out (`current`: the practitioner as you just read it, which saves that read). Nothing
        is sent when the read fails or finds nothing (NotFoundError).
        """
        changes = {
            "external_practitioner_id": optional_text("external_practitioner_id", external_practitioner_id),
            "first_name": optional_text("first_name", first_name),
            "last_name": optional_text("last_name", last_name),
            "email": optional_text("email", email),
            "role_name": optional_text("role_name", role_name),
        }
        _check_current("current", current, Practitioner)
        ref, read = _reader(
            "practitioner",
            lambda: self.list(include_inactive=True),
            ref,
            lambda p: p.id,
            lambda p: p.external_practitioner_id,
        )

        return await self._sender.update_whole(
            lambda body: update_practitioner.asyncio(self._sender, body=body), PractitionerUpdate,
            path=update_practitioner.PATH, what="practitioner", ref=ref, read=read, changes=changes, current=current,
        )  # fmt: skip

    async def list(self, *, include_inactive: bool = False, page: int | None = None) -> list[Practitioner]:
        """The practice's practitioners; disabled ones too with `include_inactive=True`. Every one of them,
        walking IntakeQ's pages of 100 should the list page, or only the 1-based `page` asked for."""
        inactive = flag("include_inactive", include_inactive) or None
        if page is not None:
            return await list_practitioners.asyncio(self._sender, include_inactive=inactive, page=page_number(page))

        async def fetch(number: int) -> list[Practitioner]:
            return await list_practitioners.asyncio(self._sender, include_inactive=inactive, page=number)

        return await self._sender.whole(collect(walk(fetch, page_size=V1_PAGE_SIZE)), "GET", list_practitioners.PATH)

    @renamed_arguments(practitioner="ref")
    async def get(self, ref: str) -> Practitioner | None:
        """The practitioner with Id or external ID `ref` (disabled ones included), or None."""
        wanted = text("ref", ref)
        found = _find(await self.list(include_inactive=True), wanted, lambda p: p.external_practitioner_id)
        return found

    async def disable(self, practitioner: str) -> None:
        """Disable a practitioner. Safe to repeat (the spec says so), so it is retried like a PUT."""
        await disable_practitioner.asyncio(self._sender, text("practitioner", practitioner))

    async def enable(self, practitioner: str) -> None:
        """Re-enable a disabled practitioner. Safe to repeat."""
        await enable_practitioner.asyncio(self._sender, text("practitioner", practitioner))

    async def delete(self, practitioner: str, *, missing_ok: bool = False) -> None:
        """Delete a practitioner; IntakeQ refuses (ConflictError) while they own client data."""
        try:
            await delete_practitioner.asyncio(self._sender, text("practitioner", practitioner))
        except NotFoundError:
            if not missing_ok:
                raise

    @was_positional("source", "destination")
    async def transfer_data(self, *, source: str, destination: str) -> None:
        """Move all client data from one practitioner to another (needed before deleting the source)."""
        await transfer_practitioner_data.asyncio(self._sender, text("source", source), text("destination", destination))

    @was_positional("source", "destination")
    async def transfer_client_ownership(self, *, source: str, destination: str) -> None:
        """Make another practitioner the owner of the source's clients, keeping history as it is."""
        await transfer_client_ownership.asyncio(self._sender, text("source", source), text("destination", destination))


class Assistants:
    """A practice's assistants. Any `assistant` argument takes the Id or the external ID."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def create(
        self,
        *,
        name: str,
        email: str,
        role_name: str | None = None,
        external_assistant_id: str | None = None,
        practitioner_ids: Iterable[str] | None = None,
    ) -> Assistant:
        """Add an assistant (for every practitioner unless `practitioner_ids` names some, by Id or external ID).

        With an external ID the create is idempotent, as `practices.create` is (practitioners named by external
        ID are compared by the Ids they stand for)."""
        body = AssistantCreate(
            name=text("name", name),
            email=text("email", email),
            role_name=optional_text("role_name", role_name),
            external_assistant_id=optional_text("external_assistant_id", external_assistant_id),
            practitioner_ids=id_list("practitioner_ids", practitioner_ids),
        )
        ref = body.external_assistant_id
        key = None
        if ref is not None:

            async def find() -> Assistant | None:
                return next((a for a in await self.list() if a.external_assistant_id == ref), None)

            key = ExternalKey("assistant", "ExternalAssistantId", ref, find, functools.partial(self._differences, body))
        return await self._sender.create_once(
            lambda: create_assistant.asyncio(self._sender, body=body), key, path=create_assistant.PATH
        )

    async def _differences(self, body: AssistantCreate, found: Assistant) -> list[str]:
        """What differs between the create and the assistant found, practitioners compared by Id: the answer
        holds Ids where the create may name practitioners by external ID."""
        differ = differences(body, found)
        if "practitioner_ids" in differ and body.practitioner_ids and found.practitioner_ids is not None:
            listed = await Practitioners(self._sender).list(include_inactive=True)
            by_external = {p.external_practitioner_id: p.id for p in listed if p.external_practitioner_id}
            if {by_external.get(ref, ref) for ref in body.practitioner_ids} == set(found.practitioner_ids):
                differ.remove("practitioner_ids")
        return differ

    @reference_first("external_assistant_id")
    async def update(
        self,
        ref: str | None = None,
        /,
        *,
        external_assistant_id: str | None = None,
        name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
        role_name: str | None = None,
        practitioner_ids: Iterable[str] | None = None,
        current: Assistant | None = None,
    ) -> Assistant:
        """Change the assistant with Id or external ID `ref` (the Id wins): pass only what changes;
        `external_assistant_id=` sets a new external ID. `practitioner_ids=[]` means all practitioners.
        `last_name` is sent as `LastName`, which the document's example of this call shows (assistants otherwise
        have a single `name`).

        The assistant is read first and every field is sent, changed or not: IntakeQ may clear what an update
        leaves out, and an empty `PractitionerIds` would give the assistant every practitioner. So when IntakeQ
        does not report an assistant's practitioners, an update that does not set them is refused. `current`:
        the assistant as you just read it, which saves the read. Nothing is sent when the read fails.
        """
        changes = {
            "external_assistant_id": optional_text("external_assistant_id", external_assistant_id),
            "name": optional_text("name", name),
            "last_name": optional_text("last_name", last_name),
            "email": optional_text("email", email),
            "role_name": optional_text("role_name", role_name),
            "practitioner_ids": id_list("practitioner_ids", practitioner_ids),
        }
        _check_current("current", current, Assistant)
        ref, read = _reader("assistant", self.list, ref, lambda a: a.id, lambda a: a.external_assistant_id)

        def keeps_access(found: Assistant) -> None:
            if found.practitioner_ids is None and changes["practitioner_ids"] is None:
                raise InvalidRequestError(
                    "IntakeQ did not report this assistant's PractitionerIds, and an update without them could "
                    "give the assistant every practitioner: pass practitioner_ids"
                )

        return await self._sender.update_whole(
            lambda body: update_assistant.asyncio(self._sender, body=body), AssistantUpdate,
            path=update_assistant.PATH, what="assistant", ref=ref, read=read, changes=changes, current=current,
            check=keeps_access,
        )  # fmt: skip

    async def list(self, *, page: int | None = None) -> list[Assistant]:
        """The practice's assistants: every one, walking IntakeQ's pages of 100 should the list page, or only the
        1-based `page` asked for."""
        if page is not None:
            return await list_assistants.asyncio(self._sender, page=page_number(page))

        async def fetch(number: int) -> list[Assistant]:
            return await list_assistants.asyncio(self._sender, page=number)

        return await self._sender.whole(collect(walk(fetch, page_size=V1_PAGE_SIZE)), "GET", list_assistants.PATH)

    @renamed_arguments(assistant="ref")
    async def get(self, ref: str) -> Assistant | None:
        """The assistant with Id or external ID `ref`, or None."""
        found = _find(await self.list(), text("ref", ref), lambda a: a.external_assistant_id)
        return found

    async def delete(self, assistant: str, *, missing_ok: bool = False) -> None:
        """Delete an assistant."""
        try:
            await delete_assistant.asyncio(self._sender, text("assistant", assistant))
        except NotFoundError:
            if not missing_ok:
                raise


class Intakes:
    """Intake forms created without sending them, and the tokens that sign a client into one."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def create(
        self,
        *,
        questionnaire_id: str,
        client_id: int | None = None,
        external_client_id: str | None = None,
        client_name: str | None = None,
        client_email: str | None = None,
        client_phone: str | None = None,
        practitioner_id: str | None = None,
    ) -> Intake:
        """Create an intake form for a client, following the document's rule: without `client_id`, give
        `client_name` and also `client_email` or `client_phone`. `external_client_id` tags the client with your own
        ID (alone it names nobody IntakeQ can create). Not retried when in doubt (no key to look it up by).
        """
        client_id = _client_id(client_id)
        _check_intake_client(client_id, client_name, client_email, client_phone)
        body = IntakeCreate(
            questionnaire_id=text("questionnaire_id", questionnaire_id),
            client_id=client_id,
            external_client_id=optional_text("external_client_id", external_client_id),
            client_name=optional_text("client_name", client_name),
            client_email=optional_text("client_email", client_email),
            client_phone=optional_text("client_phone", client_phone),
            practitioner_id=optional_text("practitioner_id", practitioner_id),
        )
        return await create_intake.asyncio(self._sender, body=body)

    async def create_token(self, intake_id: str) -> FormToken:
        """A token that signs the client into this form; use `url_with_auth()` on the result."""
        request = create_intake_token.build_request(text("intake_id", intake_id))
        token = await create_intake_token.asyncio(self._sender, intake_id)
        try:
            return FormToken.from_wire(token.token, token.url, token.expiration)
        except InvalidRequestError as exc:  # e.g. an empty Token: the server's fault, not the caller's
            raise ResponseValidationError(
                status_code=200, method=request.method, path=request.path, body_excerpt="", reason=str(exc)
            ) from None


class PracticeClient(AsyncCloseable, RequestsAnything):
    """One practice's v1 API: `practitioners`, `assistants`, `intakes`."""

    practice: str | None
    """The practice's Id or external ID when made by `PartnerClient.practice()`; None with its own key."""
    practitioners: Practitioners
    assistants: Assistants
    intakes: Intakes

    def __init__(
        self,
        practice_key: str | None = None,
        *,
        base_url: str | None = None,
        **options: Unpack[TransportOptions],
    ) -> None:
        key = practice_key if practice_key is not None else os.environ.get(PRACTICE_KEY_ENV)
        if not key:
            raise InvalidRequestError(f"no practice key: pass practice_key= or set ${PRACTICE_KEY_ENV}")
        secret = Secret(text("practice_key", key))

        async def with_own_key(send: SendWithKey) -> Any:
            return await send(secret)

        transport = Transport(base_url=base_url or None, **options)
        # Whose objects updates lock: one token for this client and every view of it (they share one key).
        self._setup(transport, with_own_key, practice=None, owns_transport=True, owner=("own key", object()))

    @classmethod
    def _bound(cls, transport: Transport, practice: str, keys: PracticeKeyCache) -> PracticeClient:
        """A client for `practice` that borrows a partner client's transport and practice-key cache."""

        async def with_cached_key(send: SendWithKey) -> Any:
            return await call_with_key(keys, practice, send)

        client = cls.__new__(cls)
        client._setup(transport, with_cached_key, practice=practice, owns_transport=False, owner=("practice", practice))
        return client

    def _setup(
        self, transport: Transport, with_key: KeyRunner, *, practice: str | None, owns_transport: bool, owner: Hashable
    ) -> None:
        self._transport = transport
        self._with_key = with_key
        self._owns_transport = owns_transport
        self._owner = owner
        self.practice = practice
        sender = Sender(transport, "practice", with_key, owner=owner)
        self.practitioners = Practitioners(sender)
        self.assistants = Assistants(sender)
        self.intakes = Intakes(sender)
        self._sender = sender

    def with_options(self, **options: Unpack[SendOptions]) -> PracticeClient:
        """This client with other send options: `timeout`, `max_retries`, `initial_delay`, `max_delay`,
        `attempt_timeout`, `call_timeout`, `max_response_size`.

        The copy shares the pool, the limits and the practice key (or the key cache it came with); this client
        keeps its own options. Closing the copy closes nothing.
        """
        view = PracticeClient.__new__(PracticeClient)
        view._setup(
            self._transport.with_options(**options),
            self._with_key,
            practice=self.practice,
            owns_transport=False,
            owner=self._owner,
        )
        return view

    @property
    def options(self) -> SendOptions:
        """The send options in force (what `with_options` changes)."""
        return self._transport.options

    @property
    def http_stack(self) -> str:
        """Which HTTP stack sends: "aiohttp", "httpx", or "custom" (your own http_client or transport)."""
        return self._transport.http_stack

    def __repr__(self) -> str:
        where = f"practice={self.practice!r}" if self.practice is not None else "own key"
        return f"PracticeClient({where}, base_url={self._transport.base_url!r}, http_stack={self.http_stack!r})"

    async def aclose(self) -> None:
        """Close the pool if this client made it; a client from PartnerClient.practice() borrows its parent's."""
        if self._owns_transport:
            await self._transport.aclose()
