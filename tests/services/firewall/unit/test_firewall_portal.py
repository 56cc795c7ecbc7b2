"""The portal's bounded HTTP parsing and its handler, without sockets or RADIUS
(the netns tier drives the real thing with a browser)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from netfate.proto.radius import Attr
from netfate.vnf.portal import function as portal_function
from netfate.vnf.portal.function import Portal
from netfate.vnf.portal.http import (
    Admission,
    HttpError,
    Request,
    Response,
    parse_head,
    read_request,
    serve,
)
from netfate.vnf.runtime import Context
from radius_fixtures import FakeRadius
from waiting import until_async


def _read(raw: bytes) -> Request:
    async def go() -> Request:
        r = asyncio.StreamReader(limit=8192)
        r.feed_data(raw)
        r.feed_eof()
        return await read_request(r, "10.0.0.9")

    return asyncio.run(go())


def test_parse_request_with_form() -> None:
    body = b"username=a%3Cb&password=p%26q"
    req = _read(
        b"POST /login?x=1 HTTP/1.1\r\nHost: portal\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    assert (req.method, req.path, req.query) == ("POST", "/login", {"x": "1"})
    assert req.form() == {"username": "a<b", "password": "p&q"}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(60)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", 400),
    ],
)
def test_bad_requests_refused(raw: bytes, status: int) -> None:
    with pytest.raises(HttpError) as e:
        _read(raw)
    assert e.value.status == status


def test_head_too_large() -> None:
    with pytest.raises(HttpError) as e:
        _read(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert e.value.status in (400, 431)


def test_parse_head_rejects_bad_line() -> None:
    with pytest.raises(HttpError):
        parse_head(b"GET / FTP/1.0\r\n\r\n", "x")


def _portal(accept: bool) -> tuple[Portal, FakeRadius]:
    p = Portal(Context("i-p", {"node": "cpe1", "address": "192.168.1.254", "nft": False}))
    fake = FakeRadius(accept, timeout=120)
    p.auth = fake  # type: ignore[assignment]
    p.acct = fake  # type: ignore[assignment]
    return p, fake


def _req(method: str, path: str, body: bytes = b"", host: str = "192.168.1.254") -> Request:
    return Request(method, path, {}, {"host": host}, body, "192.168.1.2", "192.168.1.254")


def test_redirect_login_accept_and_captive_api() -> None:
    p, fake = _portal(accept=True)

    async def go() -> None:
        r = await p.handle(_req("GET", "/", host="example.org"))
        assert r.status == 302 and r.headers["Location"] == "http://192.168.1.254/login"
        api = await p.handle(_req("GET", "/api/captive"))
        assert api.content_type == "application/captive+json"
        assert json.loads(api.body) == {
            "captive": True,
            "user-portal-url": "http://192.168.1.254/login",
        }
        r = await p.handle(_req("POST", "/login", b"username=%3Cscript%3E&password=x"))
        assert r.status == 200 and b"&lt;script&gt;" in r.body and b"<script>" not in r.body
        api = json.loads((await p.handle(_req("GET", "/api/captive"))).body)
        assert api["captive"] is False and 0 < api["seconds-remaining"] <= 120
        user, attrs = fake.sent[0]
        assert user == "<script>" and (Attr.NAS_IDENTIFIER, "cpe1") in attrs
        assert (Attr.FRAMED_IP_ADDRESS, "192.168.1.2") in attrs
        assert fake.sent[1][0] == "acct"  # accounting Start

    asyncio.run(go())


def test_reject_limits_and_rate() -> None:
    p, _ = _portal(accept=False)

    async def go() -> None:
        r = await p.handle(_req("POST", "/login", b"username=a&password=b"))
        assert r.status == 401
        r = await p.handle(_req("POST", "/login", b"username=" + b"u" * 65 + b"&password=b"))
        assert r.status == 400
        r = await p.handle(_req("POST", "/login", b"username=a%01&password=b"))
        assert r.status == 400
        codes = [
            (await p.handle(_req("POST", "/login", b"username=a&password=b"))).status
            for _ in range(5)
        ]
        assert codes[-1] == 429 and p.counts["rate_limited"] >= 1

    asyncio.run(go())


def test_login_attempts_bounded_in_memory_and_the_limit_still_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many distinct clients posting logins: the portal tracks at most MAX_TRACKED of
    them, and a client over its limit stays refused however many others come."""
    monkeypatch.setattr(portal_function, "MAX_TRACKED", 32)
    p, _ = _portal(accept=False)

    def post(peer: str) -> Request:
        return Request("POST", "/login", {}, {"host": "192.168.1.254"},
                       b"username=a&password=b", peer, "192.168.1.254")  # fmt: skip

    async def go() -> None:
        codes = [(await p.handle(post("192.168.1.2"))).status for _ in range(6)]
        assert codes[-1] == 429
        for i in range(500):
            await p.handle(post(f"10.{i >> 8}.{i & 255}.1"))
            assert len(p.posts) <= 32
        assert (await p.handle(post("192.168.1.2"))).status == 429

    asyncio.run(go())


def test_connections_bounded_per_client_and_in_all() -> None:
    """Idle connections from one address, then from many: past the caps each new one
    is answered 503 and closed at once; freed slots serve again."""
    gate = Admission(total=6, per_client=3)

    async def handler(req: Request) -> Response:
        return Response(200, b"ok\n", "text/plain")

    async def go() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        server = await serve(handler, sock, gate)

        async def connect(src: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))

        async def until_open(n: int) -> None:
            assert await until_async(lambda: gate.open == n), f"{gate.open} open, expected {n}"

        held = [await connect("127.0.0.2") for _ in range(3)]
        await until_open(3)
        r, w = await connect("127.0.0.2")  # a 4th from the same address
        assert (await r.read()).startswith(b"HTTP/1.1 503 ")
        w.close()
        held += [await connect(f"127.0.0.{i}") for i in (3, 4, 5)]
        await until_open(6)
        r, w = await connect("127.0.0.9")  # a 7th in all
        assert (await r.read()).startswith(b"HTTP/1.1 503 ")
        w.close()
        assert gate.refused == 2 and len(gate.by_client) == 4
        # A held connection is served as usual.
        r, w = held.pop()
        w.write(b"GET /api/captive HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await r.read()).startswith(b"HTTP/1.1 200 ")
        w.close()
        await until_open(5)
        r, w = await connect("127.0.0.9")  # its slot serves a new client
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await r.read()).startswith(b"HTTP/1.1 200 ")
        for _, w in held:
            w.close()
        await until_open(0)
        assert gate.by_client == {}
        server.close()
        await server.wait_closed()

    asyncio.run(go())
