"""SSO URLs and form tokens, as a partner hands them to a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intakeq_partner._errors import InvalidRequestError
from intakeq_partner.tokens import IQ_LOGOUT, FormToken, sso_url


@attrs.frozen
class Ephemeral:
    token: str
    user_id: str


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_a_plain_sso_url() -> None:
    url = sso_url("forms.example.com", "tok123", user_id="u1")
    assert url == "https://forms.example.com/signin/authenticate?token=tok123&userId=u1"


def test_every_value_is_percent_encoded() -> None:
    url = sso_url("forms.example.com", "a&b=c/d+e f", user_id="ü/1?")
    assert url == ("https://forms.example.com/signin/authenticate?token=a%26b%3Dc%2Fd%2Be%20f&userId=%C3%BC%2F1%3F")
    assert query(url) == {"token": ["a&b=c/d+e f"], "userId": ["ü/1?"]}


@given(token=st.text(min_size=1), user_id=st.text(min_size=1))
def test_any_token_survives_the_round_trip(token: str, user_id: str) -> None:
    url = sso_url("forms.example.com", token, user_id=user_id)
    assert query(url) == {"token": [token], "userId": [user_id]}


def test_the_ephemeral_token_result_can_be_passed_whole() -> None:
    result = Ephemeral(token="t", user_id="u9")
    assert query(sso_url("forms.example.com", result)) == {"token": ["t"], "userId": ["u9"]}
    assert query(sso_url("forms.example.com", result, user_id="u2"))["userId"] == ["u2"]


@pytest.mark.parametrize("path", ["intakes", "templates", "settings", "report"])
def test_a_page_can_be_opened_after_login(path: str) -> None:
    assert query(sso_url("h.example", "t", user_id="u", path=path))["path"] == [path]  # type: ignore[arg-type]


def test_a_single_form_needs_its_id() -> None:
    url = sso_url("h.example", "t", user_id="u", path="intake", path_key="form/1")
    assert url.endswith("&path=intake&pathKey=form%2F1")
    with pytest.raises(InvalidRequestError, match="path_key"):
        sso_url("h.example", "t", user_id="u", path="intake")
    with pytest.raises(InvalidRequestError, match="path_key"):
        sso_url("h.example", "t", user_id="u", path="templates", path_key="f1")
    with pytest.raises(InvalidRequestError, match="path_key"):
        sso_url("h.example", "t", user_id="u", path_key="f1")


@pytest.mark.parametrize("path", ["dashboard", "Intakes", "", "../settings"])
def test_unknown_pages_are_rejected(path: str) -> None:
    with pytest.raises(InvalidRequestError, match="path"):
        sso_url("h.example", "t", user_id="u", path=path)  # type: ignore[arg-type]


def test_token_and_user_id_are_required() -> None:
    with pytest.raises(InvalidRequestError, match="user_id"):
        sso_url("h.example", "t")
    with pytest.raises(InvalidRequestError, match="token"):
        sso_url("h.example", "", user_id="u")


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("forms.example.com", "https://forms.example.com"),
        ("forms.example.com:8443", "https://forms.example.com:8443"),
        ("https://forms.example.com", "https://forms.example.com"),
        ("https://forms.example.com/", "https://forms.example.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765", "http://localhost:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_accepted_hosts(host: str, origin: str) -> None:
    assert sso_url(host, "t", user_id="u").startswith(f"{origin}/signin/authenticate?")


@pytest.mark.parametrize(
    "host",
    [
        "",
        "forms.example.com/path",
        "forms.example.com?x=1",
        "forms.example.com#f",
        "user@forms.example.com",
        "forms example.com",
        "forms.example.com\n",
        "http://forms.example.com",
        "ftp://forms.example.com",
        "forms.example.com:99999",
        "forms.example.com:abc",
        "https://",
        ":443",
    ],
)
def test_rejected_hosts(host: str) -> None:
    with pytest.raises(InvalidRequestError, match="host"):
        sso_url(host, "t", user_id="u")


def test_the_iframe_logout_message() -> None:
    assert IQ_LOGOUT == "iq_logout"


# --- FormToken -------------------------------------------------------------------------------------------------

EXPIRES = datetime(2022, 4, 14, 15, 26, 42, 89000, tzinfo=UTC)


def form_token(url: str = "https://intakeq.com/intake/abc") -> FormToken:
    return FormToken.from_wire("7ec6&23=d/", url, "2022-04-14T15:26:42.089Z")


def test_from_wire_reads_iso_8601_with_z_and_other_offsets() -> None:
    assert form_token().expiration == EXPIRES
    assert FormToken.from_wire("t", "u", "2022-04-14T17:26:42.089+02:00").expiration == EXPIRES
    assert FormToken.from_wire("t", "u", "2022-04-14T15:26:42.0890000Z").expiration == EXPIRES  # .NET's 7 digits
    naive = FormToken.from_wire("t", "u", "2022-04-14T15:26:42.089")
    assert naive.expiration == EXPIRES
    assert naive.expiration.tzinfo is UTC
    assert FormToken.from_wire("t", "u", EXPIRES).expiration == EXPIRES
    with pytest.raises(InvalidRequestError, match="expiration"):
        FormToken.from_wire("t", "u", "next tuesday")


def test_expiration_is_always_aware_utc() -> None:
    local = EXPIRES.astimezone(timezone(timedelta(hours=-5)))
    token = FormToken(token="t", url="u", expiration=local)
    assert token.expiration.utcoffset() == timedelta(0)
    assert token.expiration == EXPIRES
    with pytest.raises(InvalidRequestError):
        FormToken(token="t", url="u", expiration=datetime(2022, 4, 14))


def test_is_expired_with_leeway() -> None:
    token = form_token()
    assert not token.is_expired(EXPIRES - timedelta(seconds=31))
    assert token.is_expired(EXPIRES - timedelta(seconds=29))  # within the default 30 s leeway
    assert not token.is_expired(EXPIRES - timedelta(seconds=29), leeway=timedelta(0))
    assert token.is_expired(EXPIRES, leeway=timedelta(0))
    assert token.is_expired()  # 2022 is long gone
    assert not FormToken(token="t", url="u", expiration=datetime.now(UTC) + timedelta(hours=1)).is_expired()


def test_url_with_auth_adds_the_encoded_token() -> None:
    assert form_token().url_with_auth() == "https://intakeq.com/intake/abc?auth=7ec6%2623%3Dd%2F"


def test_url_with_auth_keeps_an_existing_query_and_fragment() -> None:
    token = form_token("https://intakeq.com/intake/abc?lang=en&x=a%20b#top")
    url = token.url_with_auth(redirect="https://partner.example/done?id=1")
    assert url.startswith("https://intakeq.com/intake/abc?lang=en&x=a%20b&auth=")
    assert url.endswith("#top")
    assert query(url) == {
        "lang": ["en"],
        "x": ["a b"],
        "auth": ["7ec6&23=d/"],
        "redirect": ["https://partner.example/done?id=1"],
    }


def test_url_with_auth_replaces_a_stale_auth_parameter() -> None:
    url = form_token("https://intakeq.com/intake/abc?auth=old&redirect=old").url_with_auth()
    assert query(url) == {"auth": ["7ec6&23=d/"]}


def test_the_token_is_hidden_from_repr() -> None:
    token = form_token()
    assert "7ec6" not in repr(token)
    assert "intakeq.com/intake/abc" in repr(token)
