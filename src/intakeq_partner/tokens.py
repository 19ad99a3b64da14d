"""Single sign-on URLs and form tokens: the two ways a person gets from our system into IntakeQ's UI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, get_args
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import attrs

from ._base import is_loopback_host
from ._errors import InvalidRequestError

__all__ = ["IQ_LOGOUT", "SSO_PATHS", "EphemeralTokenLike", "FormToken", "SsoPath", "sso_url"]

IQ_LOGOUT = "iq_logout"
"""The message to `postMessage` into an IntakeQ iframe to end its session when the user signs out of yours."""

SsoPath = Literal["intakes", "templates", "settings", "report", "intake"]
"""The pages the document names for a single-sign-on login; `intake` opens one form and so needs a `path_key`."""

SSO_PATHS: frozenset[str] = frozenset(get_args(SsoPath))
"""The same pages, as a set of strings (for command lines and checks)."""

_BAD_HOST_CHARS = frozenset("/?#@\\")


class EphemeralTokenLike(Protocol):
    """What the ephemeral-token call returns: the one-time token and the user it signs in."""

    @property
    def token(self) -> str: ...

    @property
    def user_id(self) -> str: ...


def _origin(host: str) -> str:
    """`scheme://host[:port]` from a bare host or an https (or loopback http) base URL."""
    if not isinstance(host, str) or not host:
        raise InvalidRequestError("host must be a non-empty host name, e.g. 'forms.example.com'")
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest = "https", host
    elif scheme not in ("http", "https"):
        raise InvalidRequestError(f"host must be https (got scheme {scheme!r})")
    rest = rest.removesuffix("/")
    if not rest or any(c in _BAD_HOST_CHARS or c.isspace() or not c.isprintable() for c in rest):
        raise InvalidRequestError(f"host must be a bare host[:port], got {host!r}")
    try:
        parts = urlsplit(f"//{rest}")
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidRequestError(f"host has an invalid port: {host!r}") from None
    if not parts.hostname:
        raise InvalidRequestError(f"host must be a bare host[:port], got {host!r}")
    if scheme == "http" and not is_loopback_host(parts.hostname):
        raise InvalidRequestError("host must be https (plain http is allowed only for loopback hosts)")
    return f"{scheme}://{rest}"


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{name} must be a non-empty string")
    return value


def sso_url(
    host: str,
    token: str | EphemeralTokenLike,
    *,
    user_id: str | None = None,
    path: SsoPath | None = None,
    path_key: str | None = None,
) -> str:
    """The URL that signs a practice user into the white-labelled site with a one-time ephemeral token.

    `token` is the token string (then `user_id` is required) or the ephemeral-token result itself;
    an explicit `user_id` wins over the one on the result.
    """
    origin = _origin(host)
    if not isinstance(token, str):
        user_id = user_id if user_id is not None else token.user_id
        token = token.token
    params = {"token": _text("token", token), "userId": _text("user_id", user_id)}
    if path is not None:
        if path not in SSO_PATHS:
            raise InvalidRequestError(f"path must be one of {sorted(SSO_PATHS)}, got {path!r}")
        params["path"] = path
    if path == "intake":
        params["pathKey"] = _text("path_key (the intake form ID, required with path='intake')", path_key)
    elif path_key is not None:
        raise InvalidRequestError("path_key is only allowed with path='intake'")
    return f"{origin}/signin/authenticate?{urlencode(params, quote_via=quote)}"


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidRequestError("expiration must be timezone-aware")
    return value.astimezone(UTC)


@attrs.frozen
class FormToken:
    """A credential that logs a client into one intake form; `repr` leaves the token out."""

    token: str = attrs.field(repr=False)
    url: str
    expiration: datetime = attrs.field(converter=_aware_utc)

    @classmethod
    def from_wire(cls, token: str, url: str, expiration: str | datetime) -> FormToken:
        """Build from the API's fields; a timestamp without an offset is taken as UTC (the API speaks UTC)."""
        if isinstance(expiration, str):
            try:
                expiration = datetime.fromisoformat(expiration)
            except ValueError:
                raise InvalidRequestError(f"expiration is not an ISO 8601 timestamp: {expiration!r}") from None
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=UTC)
        return cls(token=_text("token", token), url=_text("url", url), expiration=expiration)

    def is_expired(self, now: datetime | None = None, *, leeway: timedelta = timedelta(seconds=30)) -> bool:
        """True once `now + leeway` reaches the expiration: the leeway covers the trip to the user's browser."""
        current = datetime.now(UTC) if now is None else _aware_utc(now)
        return current + leeway >= self.expiration

    def url_with_auth(self, redirect: str | None = None) -> str:
        """The form URL with `auth=<token>` (and `redirect=`, where to go after submitting), other query kept."""
        parts = urlsplit(self.url)
        kept = [p for p in parts.query.split("&") if p and unquote(p.split("=", 1)[0]) not in ("auth", "redirect")]
        added = {"auth": self.token} | ({"redirect": redirect} if redirect is not None else {})
        query = "&".join([*kept, urlencode(added, quote_via=quote)])
        return urlunsplit(parts._replace(query=query))
