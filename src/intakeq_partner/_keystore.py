"""Practice keys kept between runs, when the user asks for it: one partner-key call fewer per practice.

Every practice needs its key before any of its calls, and fetching it is a call on the partner key, the one
whose budget bounds a provisioning job. A re-run of a plan fetches every key again. With
`PartnerClient(key_store=...)` a key comes from the user's store first: either a callable (practice -> key or
None: keys the caller already holds, read only) or an object with `get`, `put` and `discard` (plain or
`async` methods: a vault, an encrypted table), to which keys fetched from IntakeQ are also written. Nothing is
written anywhere by default, and the library never writes a key to disk itself.

A stored key is trusted once: if IntakeQ refuses it (401), or the client needs that practice's key again for
any other reason, the stored key is discarded and the key is fetched from IntakeQ (and put back). A store
that raises is a store without the key: the request goes on with a key fetched from IntakeQ.
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from ._constants import LOGGER_NAME
from ._errors import InvalidRequestError
from ._secret import Secret

__all__ = ["KeyStore", "StoredKeys"]

_SERVED = 65_536
logger = logging.getLogger(LOGGER_NAME)


@runtime_checkable
class KeyStore(Protocol):
    """Where practice keys are kept, by the practice reference the client was asked for (an Id or external ID).

    Each method may be a plain function or a coroutine function.
    """

    def get(self, practice: str) -> str | Awaitable[str | None] | None: ...

    def put(self, practice: str, key: str) -> Awaitable[None] | None: ...

    def discard(self, practice: str) -> Awaitable[None] | None: ...


async def _settle(value: object) -> object:
    return await value if inspect.isawaitable(value) else value


_MISSING = object()


class StoredKeys:
    """A practice-key fetch that asks the store first (see the module's docstring)."""

    def __init__(self, store: KeyStore | Callable[[str], object], fetch: Callable[[str], Awaitable[Secret]]) -> None:
        if isinstance(store, KeyStore):
            self._get: Callable[[str], object] = store.get
            self._store: KeyStore | None = store
        elif callable(store):
            self._get, self._store = store, None
        else:
            raise InvalidRequestError("key_store must be a callable (practice -> key or None) or have get/put/discard")
        self._fetch = fetch
        # Practices whose stored key this client handed out (the most recent; a refusal comes at first use).
        self._served: OrderedDict[str, None] = OrderedDict()
        self.hits = 0  # keys served from the store (for tests and monitoring)
        self.failures = 0  # calls the store failed: each costs a key fetch at most, never the caller's request

    async def __call__(self, practice: str) -> Secret:
        if practice not in self._served:
            self._served[practice] = None
            if len(self._served) > _SERVED:
                self._served.popitem(last=False)
            found = await self._ask("get", self._get, practice)
            if found is not None and found is not _MISSING:
                if not isinstance(found, str) or not found.strip():
                    raise InvalidRequestError("the key store returned something that is not a key (a non-empty str)")
                self.hits += 1
                return Secret(found)
        else:
            # Asked again: the stored key was refused (or left the cache); it is not used a second time.
            del self._served[practice]
            if self._store is not None:
                await self._ask("discard", self._store.discard, practice)
        key = await self._fetch(practice)
        if self._store is not None:
            await self._ask("put", self._store.put, practice, key.reveal())
        return key

    async def _ask(self, what: str, call: Callable[..., object], *args: str) -> object:
        """One call of the user's store. A store in trouble (a sealed vault, a dropped connection) must not fail
        the request that needs the key: its exception costs a fetch from IntakeQ (get) or a key not kept (put,
        discard), and one warning per client naming its type only (its text may quote the key)."""
        try:
            return await _settle(call(*args))
        except Exception as exc:
            self.failures += 1
            if self.failures == 1:
                logger.warning(
                    "key store: %s failed (%s); keys are fetched from IntakeQ instead, and not kept, while it fails",
                    what,
                    type(exc).__name__,
                )
            return _MISSING

    def __repr__(self) -> str:
        return f"StoredKeys({len(self._served)} practices asked, {self.hits} served from the store)"
