"""Small pieces several modules share and that belong to none of them: `async with` support and the loopback test."""

from __future__ import annotations

import ipaddress
from types import TracebackType
from typing import Self


class AsyncCloseable:
    """`async with` support for anything with an `aclose()`: the transport and both clients."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def is_loopback_host(host: str) -> bool:
    """Whether `host` is this machine (where plain http cannot leak a key to the network)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
