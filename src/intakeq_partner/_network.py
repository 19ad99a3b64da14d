"""Network options for the stacks we build: a proxy, TLS verification and a client certificate, extra headers.

One validated `Network`, read by both stacks: an `ssl.SSLContext` made once (httpx and aiohttp each take one),
a proxy URL (httpx tunnels https through it with CONNECT; so does aiohttp), and headers added to every request.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import httpx

from ._constants import AUTH_HEADER
from ._errors import InvalidRequestError

__all__ = ["Cert", "Network", "Verify", "check_network"]

Verify: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext
"""True: the usual CA bundle; False: no check (never in production); a CA file or folder; your own context."""
Cert: TypeAlias = str | os.PathLike[str] | tuple[str, str] | tuple[str, str, str]
"""A client certificate (mutual TLS): one PEM file holding certificate and key, (certificate, key), or
(certificate, key, the key's password)."""
_REFUSED_HEADERS = {AUTH_HEADER.lower(), "host", "content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class Network:
    ssl: ssl.SSLContext | bool = True  # True: the default context, made by each stack as before
    proxy: httpx.URL | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # a proxy's password stays out of reprs
        proxy = None if self.proxy is None else str(self.proxy.copy_with(username=None, password=None))
        return f"Network(proxy={proxy!r}, headers={sorted(self.headers)!r})"


def check_network(
    proxy: str | httpx.URL | None, verify: Verify, cert: Cert | None, headers: Mapping[str, str] | None
) -> Network:
    """The options read and checked now, so a bad one fails in the constructor, not on the first call."""
    return Network(_context(verify, cert), _proxy(proxy), _headers(headers))


def _context(verify: Verify, cert: Cert | None) -> ssl.SSLContext | bool:
    if isinstance(verify, ssl.SSLContext):
        if cert is not None:
            raise InvalidRequestError("with verify=<your SSLContext>, load the client certificate into it, not cert=")
        return verify
    if verify is True and cert is None:
        return True
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is True:
        context = httpx.create_ssl_context()
    elif isinstance(verify, str | os.PathLike):
        where = os.fspath(verify)
        if os.path.isdir(where):
            context = ssl.create_default_context(capath=where)
        elif os.path.isfile(where):
            context = ssl.create_default_context(cafile=where)
        else:
            raise InvalidRequestError(f"verify: no such CA file or folder: {where}")
    else:
        raise InvalidRequestError(f"verify must be True, False, a CA file or folder, or an SSLContext, not {verify!r}")
    if cert is not None:
        files = (cert,) if isinstance(cert, str | os.PathLike) else cert
        if not isinstance(files, tuple) or not 1 <= len(files) <= 3:
            raise InvalidRequestError("cert must be a PEM file, (certificate, key) or (certificate, key, password)")
        try:
            context.load_cert_chain(*(os.fspath(f) for f in files))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidRequestError(f"cert: cannot load the client certificate: {exc.strerror or exc}") from None
    return context


def _proxy(proxy: str | httpx.URL | None) -> httpx.URL | None:
    if proxy is None:
        return None
    try:
        url = httpx.URL(proxy)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidRequestError(f"proxy is not a URL: {exc}") from None
    if url.scheme != "http" or not url.host:
        raise InvalidRequestError("proxy must be http://host:port (https targets go through it with CONNECT)")
    return url


def _headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidRequestError("headers must be a mapping of names to values")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise InvalidRequestError("headers names and values must be strings")
        if name.lower() in _REFUSED_HEADERS:
            raise InvalidRequestError(f"headers may not set {name}: the client sets it (keys go per request)")
        if any(c in name + value for c in "\r\n\0"):
            raise InvalidRequestError(f"headers[{name!r}] holds a line break")
        checked[name] = value
    return checked
