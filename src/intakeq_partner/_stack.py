"""Which HTTP stack a client of our own sends through: aiohttp under httpx when installed, else httpx alone.

`auto` picks aiohttp (the `fast` extra) when it can be imported and no proxy is set in the environment
(httpx honours proxies only for the transport it builds itself); otherwise httpx, on our sharded pool (or,
with a proxy, httpx's own). `aiohttp` and `httpx` pick one explicitly; $INTAKEQ_HTTP_STACK sets what `auto`
means (e.g. `httpx` in a test suite that mocks httpx's own transports with respx).
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import httpx

from ._aiohttp import AiohttpTransport, aiohttp_available
from ._constants import HTTP_STACK_ENV
from ._errors import InvalidRequestError
from ._network import Network
from ._pool import ShardedTransport, env_proxies_configured

__all__ = ["HttpStack", "build_transport"]

HttpStack = Literal["auto", "aiohttp", "httpx"]
"""What a caller may ask for; a client reports "aiohttp", "httpx" or "custom" (their own client or transport)."""


def build_transport(
    http_stack: HttpStack, max_concurrency: int | None, network: Network | None = None
) -> tuple[str, httpx.AsyncBaseTransport | None]:
    """The stack's name and the transport to give httpx (None: httpx's own pool, for a proxy in the environment).

    A `proxy=` given in Python goes to either stack (and wins over the environment's)."""
    network = network or Network()
    choice: str = http_stack
    if choice == "auto":
        choice = os.environ.get(HTTP_STACK_ENV) or "auto"
        where = f"${HTTP_STACK_ENV}"
    else:
        where = "http_stack"
    if choice not in get_args(HttpStack):
        raise InvalidRequestError(f"{where} must be one of {', '.join(get_args(HttpStack))}, got {choice!r}")
    if choice == "aiohttp" and not aiohttp_available():
        raise InvalidRequestError(f"{where}='aiohttp' needs aiohttp: pip install 'intakeq-partner[fast]'")
    proxies = network.proxy is None and env_proxies_configured()
    if choice == "aiohttp" or (choice == "auto" and not proxies and aiohttp_available()):
        # Chosen explicitly with a proxy set, aiohttp reads the same environment variables.
        return "aiohttp", AiohttpTransport(max_concurrency, trust_env=proxies, verify=network.ssl, proxy=network.proxy)
    if not proxies:
        # Ours even for a few connections: it also never reuses a connection whose answer overran its framing.
        return "httpx", ShardedTransport(max_concurrency, verify=network.ssl, proxy=network.proxy)
    return "httpx", None
