"""How the facade sends one generated operation: its request, the right key, the decoded answer.

A Sender is bound to one key scope ("partner" or "practice") and refuses operations of the other scope, so
a partner key can never reach a v1 endpoint nor a practice key a partner endpoint, whatever code calls it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, TypeVar

import httpx

from ._errors import ConflictError, IntakeQError, InvalidRequestError, is_ambiguous
from ._secret import Secret
from ._transport import Transport
from ._wire import RequestSpec, decode_response

T = TypeVar("T")
SendWithKey = Callable[[Secret], Awaitable[Any]]
# Runs a send with the right key (and, for practice keys, refreshes a refused key once).
KeyRunner = Callable[[SendWithKey], Awaitable[Any]]


class Sender:
    """Sends generated operations of one key scope through the shared transport."""

    def __init__(self, transport: Transport, scope: str, with_key: KeyRunner) -> None:
        self.transport = transport
        self.scope = scope
        self._with_key = with_key

    def __repr__(self) -> str:
        return f"Sender(scope={self.scope!r})"

    async def call(self, operation: ModuleType, *args: Any, **kwargs: Any) -> Any:
        """Build the request (bad arguments fail here, before anything is sent), send it, decode the answer.

        Whether a failed attempt may be repeated is the operation's own (`x-idempotent` in the spec)."""
        if operation.KEY_SCOPE != self.scope:
            raise RuntimeError(f"{operation.__name__} needs the {operation.KEY_SCOPE} key, not the {self.scope} key")
        try:
            request: RequestSpec = operation.build_request(*args, **kwargs)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None

        def parse(response: httpx.Response) -> Any:
            return decode_response(
                response, request.method, request.path, operation.RESPONSE_MODEL, operation.RESPONSE_IS_LIST
            )

        async def send(key: Secret) -> Any:
            return await self.transport.request(
                request.method,
                request.path,
                key=key,
                params=request.params or None,
                json=request.json,
                idempotent=operation.IDEMPOTENT,
                parse=parse,
            )

        return await self._with_key(send)

    async def create_once(
        self,
        operation: ModuleType,
        find_existing: Callable[[], Awaitable[T | None]] | None,
        **kwargs: Any,
    ) -> T:
        """POST a create without ever making a duplicate.

        IntakeQ has no idempotency keys, so when an attempt may have landed (a dropped connection, a timeout,
        a 5xx, a garbled answer) we look the object up by its external ID before posting again; a 409 after
        such an attempt means our earlier attempt won, and the lookup returns it. Without an external ID
        (`find_existing` is None) there is nothing to look up by, so such an attempt is not repeated.
        """
        if find_existing is None:
            only: T = await self.call(operation, **kwargs)
            return only
        attempt = 0
        uncertain = False
        while True:
            try:
                created: T = await self.call(operation, **kwargs)
                return created
            except IntakeQError as exc:
                if not (is_ambiguous(exc) or (uncertain and isinstance(exc, ConflictError))):
                    raise
                uncertain = True
                existing = await find_existing()
                if existing is not None:
                    return existing
                if isinstance(exc, ConflictError) or attempt >= self.transport.max_retries:
                    raise
                await self.transport.pause(attempt)
                attempt += 1
