"""Bounded resources of the orchestrator's API, over real HTTP (uvicorn on 127.0.0.1):
the request body limit, the caps on long-polls and event streams, long-polls that
hold no worker thread, and sign-in failure counters in bounded memory."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import authn
from apiserver import serve
from netfate import services
from netfate.orchestrator.app import Settings, create_app
from netfate.services.firewall import userpage
from netfate.services.firewall.radius import ENV_LISTEN
from waiting import until_async

SERVICES = services.registered()
"""The registered services, as `netfate orchestrator` serves them."""

TOPO: dict[str, Any] = {
    "name": "limits",
    "nodes": {"cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 4}, "pe1": {"kind": "pe"}},
    "hosts": {"laptop1": {"node": "cpe1"}, "phone": {"node": "cpe1"}},
    "links": [{"a": "cpe1", "b": "pe1"}],
}
PORTS = [
    {"name": "c1h", "ofport": 1, "peer": "host:laptop1"},
    {"name": "c1p", "ofport": 2, "peer": "host:phone"},
]
ON_CPE1 = {"descriptor": "counter", "node": "cpe1"}


class Api:
    def __init__(self, app: Any, base: str) -> None:
        self.app = app
        self.base = base + "/api/v1"
        self.auth = authn.AsAllowed(app)  # signed in per route

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=60, auth=self.auth, **kw)


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Api]]:
    """Start an orchestrator with these settings (one per test), topology loaded."""
    monkeypatch.setenv(ENV_LISTEN, "127.0.0.1:0")  # its RADIUS server: not on 1812
    stack: list[Any] = []

    def go(**settings: Any) -> Api:
        url = f"sqlite:///{tmp_path}/o.db"
        app = create_app(
            Settings(database_url=url, heartbeat_timeout_s=3600, **settings), services=SERVICES
        )
        cm = serve(app)
        base = cm.__enter__()
        stack.append(cm)
        with httpx.Client(base_url=base + "/api/v1", auth=authn.AsAllowed(app)) as c:
            assert c.put("/topology", json=TOPO).status_code == 200
            for node in ("cpe1", "pe1"):
                r = c.post(f"/agents/{node}/register", json={"endpoint": "127.0.0.1:1"})
                assert r.status_code == 200
            assert c.post("/agents/cpe1/report", json={"ports": PORTS}).status_code == 200
        return Api(app, base)

    yield go
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    """The API's keyed error body, with the expected status."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"detail", "errors"}
    return body


def test_body_over_the_limit_is_413_with_the_error_body(start: Callable[..., Api]) -> None:
    api = start(max_body_bytes=2048)
    desc = {"name": "big", "function": "counter", "cpu": 0.1, "memory_mb": 8}

    async def go() -> None:
        async with api.client() as c:
            r = await c.post("/descriptors", json={**desc, "description": "x" * 1000})
            assert r.status_code == 201
            r = await c.post("/descriptors", json={**desc, "description": "x" * 5000})
            assert "large" in _error(r, 413)["detail"].lower()

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
                yield b'{"name": "big", "function": "counter", "cpu": 0.1, "memory_mb": 8, '
                for _ in range(10):
                    yield b'"pad": "' + b"x" * 500 + b'", '
                yield b'"stateful": false}'

            r = await c.post("/descriptors", content=chunks())
            _error(r, 413)
            # Nothing of the refused bodies was stored.
            got = (await c.get("/descriptors")).json()
            assert [d["description"] for d in got if d["name"] == "big"] == ["x" * 1000]

    asyncio.run(go())


def test_with_many_long_polls_open_other_routes_still_answer(start: Callable[..., Api]) -> None:
    """More long-polls than the worker pool has threads (40): none holds a thread,
    so the API answers as before; a change then wakes them all."""
    api = start()
    n_view = n_desired = 30

    async def go() -> None:
        async with api.client(limits=httpx.Limits(max_connections=200)) as c:
            view = (await c.get("/sdn/view")).json()
            desired = (await c.get("/agents/cpe1/desired")).json()
            polls = [
                asyncio.create_task(
                    c.get("/sdn/view", params={"since": view["version"], "wait": 10})
                )
                for _ in range(n_view)
            ] + [
                asyncio.create_task(
                    c.get(
                        "/agents/cpe1/desired", params={"revision": desired["revision"], "wait": 30}
                    )
                )
                for _ in range(n_desired)
            ]
            slots = api.app.state.long_polls
            assert await until_async(lambda: slots.used == n_view + n_desired, 30)
            # Sync routes (worker threads) and async ones answer while all wait.
            assert (await c.get("/health")).status_code == 200
            assert (await c.get("/nodes")).status_code == 200
            assert (await c.get("/intents")).status_code == 200
            r = await c.post("/instances", json={"descriptor": "counter", "node": "cpe1"})
            assert r.status_code == 201
            # ... the instance changed cpe1's desired state: those polls answer.
            r = await c.post(
                "/intents",
                json={"kind": "connectivity", "id": "x", "a": "host:laptop1", "b": "host:phone"},
            )
            assert r.status_code == 201, r.text
            answers = await asyncio.gather(*polls)
            assert all(a.status_code == 200 for a in answers)
            assert {a.json()["version"] for a in answers[:n_view]} != {view["version"]}
            assert all(a.json()["revision"] > desired["revision"] for a in answers[n_view:])
            assert api.app.state.long_polls.used == 0

    asyncio.run(go())


def test_long_polls_beyond_the_cap_are_429(start: Callable[..., Api]) -> None:
    api = start(max_long_polls=4)

    async def go() -> None:
        async with api.client() as c:
            rev = (await c.get("/agents/cpe1/desired")).json()["revision"]
            params = {"revision": rev, "wait": 30}
            held = [
                asyncio.create_task(c.get("/agents/cpe1/desired", params=params)) for _ in range(4)
            ]
            assert await until_async(lambda: api.app.state.long_polls.used == 4)
            r = await c.get("/agents/cpe1/desired", params=params)
            assert "long-polls" in _error(r, 429)["detail"] and r.headers["retry-after"]
            version = (await c.get("/sdn/view")).json()["version"]
            _error(await c.get("/sdn/view", params={"since": version, "wait": 5}), 429)
            # A poll that need not wait is no waiter: answered as usual.
            assert (await c.get("/agents/cpe1/desired")).status_code == 200
            assert (await c.post("/instances", json=ON_CPE1)).status_code == 201
            assert all(r.status_code == 200 for r in await asyncio.gather(*held))
            rev = (await c.get("/agents/cpe1/desired")).json()["revision"]
            again = asyncio.create_task(
                c.get("/agents/cpe1/desired", params={**params, "revision": rev})
            )
            assert await until_async(lambda: api.app.state.long_polls.used == 1)
            assert (await c.post("/instances", json=ON_CPE1)).status_code == 201
            assert (await again).status_code == 200

    asyncio.run(go())


def test_event_streams_beyond_the_cap_are_429(start: Callable[..., Api]) -> None:
    api = start(max_event_streams=2)

    async def go() -> None:
        async with api.client() as c:

            async def first_event(lines: AsyncIterator[str]) -> str:
                # Read through the stream's own line iterator, kept by the caller:
                # an abandoned one would close the stream when collected.
                async for line in lines:
                    if line.startswith("id: "):
                        return line
                raise AssertionError("stream ended")

            async with c.stream("GET", "/events/stream") as one:
                lines1 = one.aiter_lines()
                assert one.status_code == 200 and await first_event(lines1)
                async with c.stream("GET", "/events/stream") as two:
                    lines2 = two.aiter_lines()
                    assert two.status_code == 200 and await first_event(lines2)
                    assert api.app.state.event_streams.used == 2
                    r = await c.get("/events/stream")
                    assert "event streams" in _error(r, 429)["detail"]
                assert await until_async(lambda: api.app.state.event_streams.used == 1)
                async with c.stream("GET", "/events/stream") as three:
                    lines3 = three.aiter_lines()
                    assert three.status_code == 200 and await first_event(lines3)
                # The first one still streams (its next event comes).
                assert (await first_event(lines1)).startswith("id: ")
            assert await until_async(lambda: api.app.state.event_streams.used == 0)

    asyncio.run(go())


def test_sign_in_failures_bounded_in_memory_and_the_limit_still_applies(
    start: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(userpage, "MAX_CLIENTS", 16)
    api = start()
    bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}

    async def go() -> None:
        async with api.client() as c:
            r = await c.post("/firewall/users", json={"name": "alice", "password": "right"})
            assert r.status_code == 201

        # The API sees each client's address: one transport per address.
        def client(ip: str) -> httpx.AsyncClient:
            return api.client(transport=httpx.AsyncHTTPTransport(local_address=ip))

        async with client("127.0.0.2") as attacker:
            codes = [(await attacker.get("/firewall/me/rules", headers=bad)).status_code
                     for _ in range(6)]  # fmt: skip
            assert codes == [401] * 5 + [429]
        for i in range(64):  # many distinct clients, each failing once
            async with client(f"127.0.1.{i + 1}") as other:
                assert (await other.get("/firewall/me/rules", headers=bad)).status_code in (
                    401,
                    429,
                )
        failures = api.app.state.netfate_signin_failures
        assert len(failures) <= 16
        async with client("127.0.0.2") as attacker:
            r = await attacker.get("/firewall/me/rules", headers=bad)
            _error(r, 429)
            good = {"Authorization": "Basic " + base64.b64encode(b"alice:right").decode()}
            _error(await attacker.get("/firewall/me/rules", headers=good), 429)

    asyncio.run(go())
