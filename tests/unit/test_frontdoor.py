"""The front door (netfate/frontdoor.py) in memory: what it relays and what it refuses
before any byte reaches the orchestrator, its limits, the headers it adds and drops;
and the orchestrator's side (identity/door.py): a door's client address is believed
only with the door's secret, so sign-in throttling counts per real client."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.frontdoor import CORE_PATHS, Door, allowed, host_name, relay_client, service_paths
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.identity.door import CLIENT_HEADER, DOOR_HEADER, DoorClients

SECRET = "s3cret-of-the-door-0123456789"
PREFIXES = CORE_PATHS + service_paths([("firewall", ("/me",)), ("sharing", ("/page", "/shares"))])


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/api/v1/auth/session", True),
        ("/api/v1/auth/me", True),
        ("/static/sharing/panel.js", True),
        ("/api/v1/firewall/me", True),
        ("/api/v1/firewall/me/rules", True),
        ("/api/v1/sharing/shares/3/accept", True),
        ("/api/v1/sharing/page", True),
        ("/api/v1/auth/token", False),  # API tokens: the operator's tools, not a page's
        ("/api/v1/accounts", False),
        ("/api/v1/nodes", False),
        ("/api/v1/instances", False),
        ("/api/v1/agents/cpe1/report", False),
        ("/api/v1/sdn/intents", False),
        ("/api/v1/sharing/pns", False),  # not in this door's list
        ("/", False),
        ("/api/v1/firewall/meow", False),  # a prefix is a whole segment
        ("/api/v1/firewall/me/../../nodes", False),
        ("/api/v1/firewall/me/./rules", False),
        ("/static//etc/passwd", False),
        ("/static/x\\..\\y", False),
        ("/api/v1/auth/me\n", False),
        ("api/v1/auth/me", False),
        ("/static/" + "a" * 3000, False),
    ],
)
def test_the_path_filter(path: str, ok: bool) -> None:
    assert allowed(path, PREFIXES) is ok


@given(st.text(max_size=300))
def test_a_relayed_path_is_below_a_prefix_and_cannot_climb(path: str) -> None:
    if allowed(path, PREFIXES):
        assert any(path == p or path.startswith(p + "/") for p in PREFIXES)
        assert ".." not in path.split("/") and "//" not in path


@pytest.mark.parametrize(
    ("host", "name"),
    [("10.255.0.254", "10.255.0.254"), ("10.255.0.254:80", "10.255.0.254"),
     ("Door.Example:8080", "door.example"), ("[fe80::1]:80", "fe80::1"), ("[bad", "")],
)  # fmt: skip
def test_host_names(host: str, name: str) -> None:
    assert host_name(host) == name


class Upstream:
    """A stand-in orchestrator: records what reached it."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        body = json.dumps({"path": request.url.path, "query": request.url.query.decode()})
        return httpx.Response(  # a stream, as a real connection's answer is
            200,
            headers=[("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-answer", "yes")],
            stream=httpx.ByteStream(body.encode()),
        )


def door_and_upstream(**kw: Any) -> tuple[Door, Upstream]:
    up = Upstream()
    door = Door(upstream="http://127.0.0.1:9", secret=SECRET,
                hosts=frozenset({"10.255.0.254"}), prefixes=PREFIXES, **kw)  # fmt: skip
    door.client = relay_client(door.upstream, transport=httpx.MockTransport(up))
    return door, up


def ask(door: Door, method: str, path: str, client: str = "192.168.1.10", **kw: Any) -> Any:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=door, client=(client, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://10.255.0.254") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go())


def test_a_users_request_is_relayed_with_the_client_vouched_for() -> None:
    door, up = door_and_upstream()
    r = ask(door, "POST", "/api/v1/auth/session?x=1", json={"name": "alice"},
            headers={"X-Netfate-Client": "6.6.6.6", "X-Forwarded-For": "7.7.7.7",
                     "X-Netfate-Door": "guess", "X-CSRF-Token": "t"})  # fmt: skip
    assert r.status_code == 200
    assert r.json() == {"path": "/api/v1/auth/session", "query": "x=1"}
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    (req,) = up.seen
    assert req.headers.get_list(DOOR_HEADER) == [SECRET]
    assert req.headers.get_list(CLIENT_HEADER) == ["192.168.1.10"]  # its own, not the forged
    assert "x-forwarded-for" not in req.headers
    assert req.headers["host"] == "10.255.0.254"
    assert req.headers["x-csrf-token"] == "t"
    assert req.content == b'{"name":"alice"}'


def test_a_cookie_set_for_one_client_never_goes_with_anothers_requests() -> None:
    # The door relays every client through one HTTP client: a session cookie the
    # orchestrator set for one (a sign-in) must not sign the next one in.
    door, up = door_and_upstream()
    first = ask(door, "POST", "/api/v1/auth/session", client="192.168.1.10")
    assert first.headers.get_list("set-cookie") == ["a=1", "b=2"]  # to its client
    ask(door, "GET", "/api/v1/auth/me", client="192.168.1.11")
    mine = ask(door, "GET", "/api/v1/auth/me", client="192.168.1.10", headers={"Cookie": "a=1"})
    assert mine.status_code == 200
    _, other, own = up.seen
    assert "cookie" not in other.headers, other.headers
    assert own.headers.get_list("cookie") == ["a=1"]  # a client's own cookie passes


@pytest.mark.parametrize(
    "path", ["/api/v1/nodes", "/api/v1/accounts", "/api/v1/instances", "/api/v1/sdn/intents",
             "/api/v1/auth/token", "/api/v1/sharing/shares/../../accounts"],
)  # fmt: skip
def test_the_operators_api_is_refused_at_the_door(path: str) -> None:
    door, up = door_and_upstream()
    r = ask(door, "GET", path)
    assert r.status_code == 404 and r.json() == {"detail": "not found"}
    assert up.seen == []


def test_the_root_sends_a_browser_to_sign_in_then_home() -> None:
    door, up = door_and_upstream()
    r = ask(door, "GET", "/")
    assert r.status_code == 303
    assert r.headers["location"] == "/signin?next=/api/v1/sharing/page"
    assert ask(door, "POST", "/").status_code == 404  # only a browser's GET is sent on
    assert up.seen == []


def test_another_host_name_is_refused() -> None:
    door, up = door_and_upstream()
    r = ask(door, "GET", "/api/v1/auth/me", headers={"Host": "evil.example"})
    assert r.status_code == 400 and "Host" in r.json()["detail"]
    assert up.seen == []


def test_a_body_too_large_is_refused_declared_or_streamed() -> None:
    door, up = door_and_upstream(max_body=1024)
    assert ask(door, "POST", "/api/v1/auth/session", content=b"x" * 1025).status_code == 413

    async def chunks() -> Any:
        for _ in range(4):
            yield b"y" * 400

    r = ask(door, "POST", "/api/v1/auth/session", content=chunks())
    assert r.status_code == 413
    assert up.seen == []
    r = ask(door, "POST", "/api/v1/auth/session", headers={"Content-Length": "1e9"}, content=b"")
    assert r.status_code == 400


def test_requests_in_flight_are_bounded_per_client() -> None:
    door, up = door_and_upstream(per_client=2)
    door.in_flight["192.168.1.10"] = 2  # two requests of this client under way
    assert ask(door, "GET", "/api/v1/auth/me").status_code == 429
    assert ask(door, "GET", "/api/v1/auth/me", client="192.168.2.10").status_code == 200
    assert len(up.seen) == 1 and door.in_flight == {"192.168.1.10": 2}


def test_an_orchestrator_that_does_not_answer_is_a_502() -> None:
    door, _ = door_and_upstream()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    door.client = httpx.AsyncClient(transport=httpx.MockTransport(down), base_url=door.upstream)
    r = ask(door, "GET", "/api/v1/auth/me")
    assert r.status_code == 502 and r.json()["detail"] == "the orchestrator did not answer"
    assert door.in_flight == {}


# ----------------------------------------------------------- the orchestrator's side


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    names = sorted(k.decode() for k, _ in scope["headers"])
    body = f"{scope['client'][0]} {','.join(names)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("headers", "seen"),
    [
        ({DOOR_HEADER: SECRET, CLIENT_HEADER: "192.168.1.10"}, "192.168.1.10"),
        ({DOOR_HEADER: "wrong-" + SECRET, CLIENT_HEADER: "192.168.1.10"}, "testclient"),
        ({CLIENT_HEADER: "192.168.1.10"}, "testclient"),
        ({DOOR_HEADER: SECRET, CLIENT_HEADER: "not an address"}, "testclient"),
        ({DOOR_HEADER: SECRET}, "testclient"),
    ],
)
def test_the_door_client_is_believed_with_the_secret_only(
    headers: dict[str, str], seen: str
) -> None:
    c = TestClient(DoorClients(_echo, SECRET))  # type: ignore[arg-type]
    text = c.get("/", headers=headers).text
    client, names = text.split(" ")
    assert client == seen
    assert DOOR_HEADER not in names and CLIENT_HEADER not in names  # never reach a route


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        DoorClients(_echo, "short")


def test_sign_in_failures_count_per_client_behind_the_door(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db", door_secret=SECRET,
                              operator_file=tmp_path / "operator.json"))  # fmt: skip
    with authn.client(app) as c:
        r = c.post("/api/v1/accounts", json={"name": "pat", "role": "user", "password": "pw-" * 4})
        assert r.status_code == 201, r.text

        def sign_in(client: str, password: str) -> int:
            r = c.post("/api/v1/auth/session", json={"name": "pat", "password": password},
                       headers={DOOR_HEADER: SECRET, CLIENT_HEADER: client}, auth=None)  # fmt: skip
            return r.status_code

        assert [sign_in("192.168.1.66", "wrong") for _ in range(10)] == [401] * 10
        assert sign_in("192.168.1.66", "pw-" * 4) == 429  # that client is limited
        assert sign_in("192.168.2.10", "pw-" * 4) == 200  # another behind the same door is not


VALUES = st.one_of(
    st.binary(max_size=40), st.sampled_from([b"10.255.0.254", b"10.255.0.254:80", b"12", b"2000"])
)
PATHS = st.one_of(st.text(max_size=200),
                  st.sampled_from(PREFIXES).map(lambda p: p + "/x"))  # fmt: skip


@given(
    path=PATHS,
    headers=st.lists(st.tuples(st.sampled_from([b"host", b"content-length", b"x-other"]),
                               VALUES), max_size=6),
)  # fmt: skip
def test_any_request_head_gets_an_answer_never_an_exception(
    path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """Whatever path and header bytes the HTTP parser hands the door (it parses no bytes
    itself: uvicorn's h11 does), the check answers with a status, and relays only a
    request with one Host of its own, a sane Content-Length and an allowed path."""
    door, _ = door_and_upstream(max_body=1024)
    status, _detail = door.check({"path": path, "headers": headers})
    assert status in (0, 400, 404, 413)
    if status == 0:
        assert allowed(path, PREFIXES)
        (host,) = [v for k, v in headers if k == b"host"]
        assert host_name(host.decode("latin-1")) == "10.255.0.254"
        assert all(v.isdigit() and int(v) <= 1024 for k, v in headers if k == b"content-length")
