"""Network options on both stacks: a private CA and a client certificate (mutual TLS) against a local TLS
server, a local CONNECT proxy, extra headers; and what is refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from conftest import PARTNER_KEY, STACKS
from rawservers import by_path, respond, serve, surplus

from intakeq_partner import APIConnectionError, InvalidRequestError, PartnerClient, record_calls

PATH = "/api/partner/practice"


@dataclass
class Certs:
    ca: trustme.CA
    ca_file: Path
    client_cert: Path
    client_key: Path
    server: ssl.SSLContext  # requires a client certificate from the CA


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client = ca.issue_cert("client.example.com")
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    ca.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED
    return Certs(ca, folder / "ca.pem", folder / "client.pem", folder / "client.key", server)


def client(stack: str, base_url: str, **options: Any) -> PartnerClient:
    return PartnerClient(PARTNER_KEY, base_url=base_url, **{"http_stack": stack, "max_retries": 0, **options})


@pytest.mark.parametrize("style", ["files", "context"])
@pytest.mark.parametrize("stack", STACKS)
async def test_mutual_tls_with_a_private_ca_and_extra_headers(certs: Certs, stack: str, style: str) -> None:
    if style == "files":
        options: dict[str, Any] = {
            "verify": str(certs.ca_file),
            "cert": (str(certs.client_cert), str(certs.client_key)),
        }
    else:
        context = ssl.create_default_context()
        certs.ca.configure_trust(context)
        context.load_cert_chain(certs.client_cert, certs.client_key)
        options = {"verify": context}
    async with serve(respond(200, []), tls=certs.server) as server:
        async with client(stack, server.base_url, headers={"X-Team": "ops"}, **options) as partner:
            assert partner.http_stack == stack
            assert await partner.request("GET", PATH) == []
    [seen] = server.requests
    assert seen.headers["x-team"] == "ops" and seen.headers["x-auth-key"] == PARTNER_KEY
    [peer] = server.peer_certificates
    assert "client.example.com" in repr(peer)  # the server checked our certificate against its CA


@pytest.mark.parametrize("stack", STACKS)
async def test_no_client_certificate_or_an_unknown_ca_fails_the_handshake(certs: Certs, stack: str) -> None:
    async with serve(respond(200, []), tls=certs.server) as server:
        for options in ({"verify": str(certs.ca_file)}, {"cert": (str(certs.client_cert), str(certs.client_key))}):
            async with client(stack, server.base_url, **options) as partner:
                with pytest.raises(APIConnectionError):
                    await partner.request("GET", PATH)
    assert server.requests == []


@dataclass
class Proxy:
    url: str = ""
    lines: list[str] = field(default_factory=list)  # each connection's first line
    tunnelled: bytearray = field(default_factory=bytearray)  # what the client sent through the tunnels
    auth: list[str | None] = field(default_factory=list)  # each CONNECT's Proxy-Authorization


@contextlib.asynccontextmanager
async def connect_proxy(credentials: str | None = None) -> AsyncIterator[Proxy]:
    """An HTTP proxy that only tunnels (CONNECT), as corporate proxies do for https; with `credentials`
    ("user:password"), only for a CONNECT that carries them as Basic Proxy-Authorization (else 407)."""
    proxy = Proxy()
    tasks: set[asyncio.Task[Any]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None) -> None:
        try:
            while data := await reader.read(65536):
                if record is not None:
                    record.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            proxy.lines.append(line)
            method, target, _ = line.split(" ", 2)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            fields = (f.split(":", 1) for f in head.decode("latin-1").split("\r\n")[1:] if ":" in f)
            given = {name.strip().lower(): value.strip() for name, value in fields}.get("proxy-authorization")
            proxy.auth.append(given)
            if credentials is not None and given != "Basic " + base64.b64encode(credentials.encode()).decode():
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n")
                writer.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(pipe(reader, up_writer, proxy.tunnelled), pipe(up_reader, writer, None))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield proxy
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("stack", STACKS)
async def test_a_connect_proxy_tunnels_https_and_sees_no_key(certs: Certs, stack: str) -> None:
    tls = {"verify": str(certs.ca_file), "cert": (str(certs.client_cert), str(certs.client_key))}
    async with serve(respond(200, [{"Id": "p1"}]), tls=certs.server) as server, connect_proxy() as proxy:
        async with client(stack, server.base_url, proxy=proxy.url, **tls) as partner:
            assert await partner.request("GET", PATH, params={"search": "x"}) == [{"Id": "p1"}]
            assert await partner.request("GET", PATH) == [{"Id": "p1"}]
    host_port = server.base_url.removeprefix("https://")
    assert proxy.lines == [f"CONNECT {host_port} HTTP/1.1"]  # one tunnel, kept alive for both requests
    assert len(server.requests) == 2 and server.requests[0].path == PATH + "?search=x"
    assert proxy.tunnelled and PARTNER_KEY.encode() not in proxy.tunnelled and b"search" not in proxy.tunnelled


def _texts(exc: BaseException) -> str:
    """What an exception says, its causes and contexts included."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("stack", STACKS)
async def test_proxy_credentials_go_to_the_proxy_alone(
    certs: Certs, stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="intakeq_partner")
    tls = {"verify": str(certs.ca_file), "cert": (str(certs.client_cert), str(certs.client_key))}
    heard: list[object] = []
    async with serve(respond(200, []), tls=certs.server) as server, connect_proxy("ops:s3cret-pw") as proxy:
        where = proxy.url.removeprefix("http://")
        async with client(
            stack, server.base_url, proxy=f"http://ops:s3cret-pw@{where}", hooks=[heard.append], **tls
        ) as p:
            with record_calls() as calls:
                assert await p.request("GET", PATH) == []
            shown = [
                repr(p),
                repr(heard),
                repr(calls),
                repr(p._transport.__dict__),
                repr(p._transport._channel.__dict__),
            ]
            transport = p._transport._channel.client._transport
            shown += [repr(transport), repr(getattr(transport, "__dict__", ""))]
        failures = []
        # Refused (a 407 is not resent: the same credentials would be refused again); nobody there.
        for wrong, retries in ((f"http://ops:wrong-pw@{where}", 2), ("http://ops:s3cret-pw@127.0.0.1:9", 0)):
            async with client(stack, server.base_url, proxy=wrong, max_retries=retries, **tls) as p:
                with pytest.raises(APIConnectionError) as caught:
                    await p.request("GET", PATH)
                failures.append(caught.value)
    assert proxy.auth[0] == "Basic " + base64.b64encode(b"ops:s3cret-pw").decode()  # sent to the proxy
    assert len(server.requests) == 1 and "proxy-authorization" not in server.requests[0].headers
    assert b"s3cret-pw" not in proxy.tunnelled and PARTNER_KEY.encode() not in proxy.tunnelled
    assert "407" in str(failures[0]) and not failures[0].maybe_sent
    assert proxy.auth[1:] == ["Basic " + b64("ops:wrong-pw")]  # one CONNECT with the wrong credentials
    for text in [*shown, caplog.text, *map(_texts, failures)]:
        assert "s3cret-pw" not in text and "wrong-pw" not in text and b64("ops:s3cret-pw") not in text, text


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("via", ["proxy", "direct"])
@pytest.mark.parametrize("stack", STACKS)
async def test_bytes_beyond_an_answer_over_tls_are_not_the_next_answer(certs: Certs, stack: str, via: str) -> None:
    """Over TLS the bytes can come in the answer's last read, held by the TLS layer where neither h11 nor a
    check of the socket sees them (the httpx stack reused such a connection, behind a proxy or not)."""
    forged = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"Id":"forged"}'
    routes = {("GET", PATH): surplus([{"Id": "p-1"}], forged), ("POST", PATH): respond(200, {"Id": "p-real"})}
    tls = {"verify": str(certs.ca_file), "cert": (str(certs.client_cert), str(certs.client_key))}
    async with serve(by_path(routes), tls=certs.server) as server, connect_proxy() as proxy:
        options: dict[str, Any] = {"proxy": proxy.url} if via == "proxy" else {}
        async with client(stack, server.base_url, **options, **tls) as p:
            assert await p.request("GET", PATH) == [{"Id": "p-1"}]
            assert await p.request("POST", PATH, json={"PracticeName": "x"}) == {"Id": "p-real"}
    assert server.count("POST") == 1 and server.requests[-1].connection == 2  # a new connection (and tunnel)
    assert len(proxy.lines) == (2 if via == "proxy" else 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"headers": {"x-auth-key": "other"}}, "may not set x-auth-key"),
        ({"headers": {"Host": "evil.example.com"}}, "may not set Host"),
        ({"headers": {"X-A": "1\r\nX-Auth-Key: k"}}, "line break"),
        ({"proxy": "socks5://127.0.0.1:1080"}, "proxy must be http://"),
        ({"verify": "/no/such/ca.pem"}, "no such CA file"),
        ({"cert": "/no/such/cert.pem"}, "cannot load the client certificate"),
        ({"verify": ssl.create_default_context(), "cert": "c.pem"}, "load the client certificate into it"),
    ],
)
def test_bad_network_options_fail_in_the_constructor(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        PartnerClient(PARTNER_KEY, **options)


def test_network_options_are_refused_with_your_own_client() -> None:
    with pytest.raises(InvalidRequestError, match="set them on your own"):
        PartnerClient(PARTNER_KEY, http_client=httpx.AsyncClient(), proxy="http://127.0.0.1:3128")
    with pytest.raises(InvalidRequestError, match="set them on your own"):
        PartnerClient(PARTNER_KEY, transport=httpx.AsyncHTTPTransport(), headers={"X-Team": "ops"})
    # A proxy's password stays out of the client's repr and of the transport's.
    partner = PartnerClient(PARTNER_KEY, proxy="http://user:s3cret-pw@127.0.0.1:3128", http_stack="httpx")
    assert "s3cret-pw" not in repr(partner) and "s3cret-pw" not in repr(partner._transport.__dict__)
