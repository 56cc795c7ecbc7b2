"""Property-based fuzzing of the whole REST API from its OpenAPI document (schemathesis).

Collected twice: by tests/fuzz/test_api_fuzz_sqlite.py and by
tests/netns/test_api_fuzz_postgres.py (a real PostgreSQL server), each defining the
`databases` fixture. Every operation of the document (core, SDN and every service's
router) is one test; each runs against a fresh copy of a seeded database (a loaded
topology, registered agents, running instances, intents, users, personal networks,
shares) behind a real uvicorn server, so that operations on existing things reach
their handlers rather than only answering 404.

Required of every answer: never 5xx; its status is documented for the operation;
its body conforms to the documented schema (error bodies included); for invalid
input (schemathesis's negative mode) a 4xx. Generation is derandomized (fixed
seed, no example database), so CI runs the same cases every time.
"""

from __future__ import annotations

import collections
import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from apiserver import serve
from netfate.orchestrator.app import Settings, create_app
from netfate.services.firewall.radius import ENV_LISTEN
from netfate.store.db import Database

EXAMPLES = int(os.environ.get("NETFATE_FUZZ_EXAMPLES", "40"))
"""Generated cases per operation and mode (explicit examples and boundary cases come on top)."""

TOPO: dict[str, Any] = {
    "name": "fuzz",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 4},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 4},
        "pe1": {"kind": "pe", "cpu": 8},
        "core1": {"kind": "core"},
    },
    "hosts": {
        "laptop1": {"node": "cpe1", "mac": "02:00:00:00:01:01"},
        "mediaserver": {"node": "cpe1", "kind": "nas"},
        "tv": {"node": "cpe2", "kind": "tv", "mac": "02:00:00:00:02:01"},
    },
    "links": [
        {"a": "cpe1", "b": "pe1", "delay": "5ms"},
        {"a": "cpe2", "b": "pe1", "delay": "5ms"},
        {"a": "pe1", "b": "core1"},
    ],
}
PORTS: dict[str, list[dict[str, Any]]] = {
    "cpe1": [
        {"name": "c1h", "ofport": 1, "peer": "host:laptop1"},
        {"name": "c1m", "ofport": 2, "peer": "host:mediaserver"},
        {"name": "c1up", "ofport": 3, "peer": "node:pe1"},
    ],
    "cpe2": [
        {"name": "c2h", "ofport": 1, "peer": "host:tv"},
        {"name": "c2up", "ofport": 2, "peer": "node:pe1"},
    ],
    "pe1": [
        {"name": "p1", "ofport": 1, "peer": "node:cpe1"},
        {"name": "p2", "ofport": 2, "peer": "node:cpe2"},
        {"name": "p3", "ofport": 3, "peer": "node:core1"},
    ],
    "core1": [{"name": "k1", "ofport": 1, "peer": "node:pe1"}],
}
ALICE, BOB = "alice@home.example", "bob@hotel.example"


def seed(base: str) -> dict[str, list[Any]]:
    """Fill a fresh orchestrator through its API; returns the names of what exists,
    by the parameter names that refer to them."""
    known: dict[str, list[Any]] = collections.defaultdict(list)
    with httpx.Client(base_url=base + "/api/v1", timeout=30) as c:

        def ok(r: httpx.Response) -> Any:
            assert r.is_success, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
            return r.json()

        ok(c.put("/topology", json=TOPO))
        for i, node in enumerate(TOPO["nodes"]):
            reg = {"endpoint": f"127.0.0.1:{7000 + i}", "datapath_id": f"{i + 1:016x}"}
            ok(c.post(f"/agents/{node}/register", json=reg))
            ok(c.post(f"/agents/{node}/report", json={"ports": PORTS[node], "instances": []}))
        live = []
        for node in ("cpe1", "cpe2", "pe1"):
            inst = ok(c.post("/instances", json={"descriptor": "counter", "node": node}))
            live.append(inst)
        pending = ok(c.post("/instances", json={"descriptor": "counter", "serves": "tv"}))
        for inst in live:
            runs = [{"id": inst["id"], "status": "running", "pid": 1}]
            ok(c.post(f"/agents/{inst['node']}/report", json={"instances": runs}))
        ok(c.post("/intents", json={"kind": "connectivity", "id": "laptop-tv",
                                    "a": "host:laptop1", "b": "host:tv"}))  # fmt: skip
        ok(c.post("/netfate/radius/clients", json={"address": "127.0.0.1", "secret": "s3cret"}))
        for user in ("alice", "bob"):
            ok(c.post("/netfate/users", json={"name": user, "password": "wonderland",
                                              "host": "laptop1"}))  # fmt: skip
        ok(c.post("/sharing/pns", json={"email": ALICE, "node": "cpe1"}))
        ok(c.post("/sharing/pns", json={"email": BOB, "node": "cpe2"}))
        ok(c.post(f"/sharing/pns/{ALICE}/devices", json={"name": "cam", "ip": "192.168.1.50"}))
        shares = [
            ok(c.post("/sharing/shares", json={"owner": ALICE, "device": d, "recipient": BOB}))
            for d in ("mediaserver", "cam")
        ]
        ok(c.post(f"/sharing/shares/{shares[0]['id']}/accept", json={"by": BOB}))
        nodes = list(TOPO["nodes"])
        known.update(
            name=[*nodes, "alice", "bob"],
            node=nodes,
            iid=[i["id"] for i in [*live, pending]],
            intent_id=["laptop-tv"],
            email=[ALICE, BOB],
            pn=[ALICE, BOB],
            owner=[ALICE],
            recipient=[BOB],
            by=[ALICE, BOB],
            sid=[s["id"] for s in shares],
            address=["127.0.0.1"],
            user=["alice", "bob"],
            serves=["laptop1", "tv", "mediaserver"],
            host=["laptop1", "tv"],
            descriptor=["counter", "hrh-alarm", "hrh-climate"],
            device=["mediaserver", "cam"],
            state=["running", "requested"],
        )
    return dict(known)


# ------------------------------------------------------------------ the schema


def _document() -> dict[str, Any]:
    """The OpenAPI document as the orchestrator serves it (it needs no database)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(Settings(database_url="sqlite://")).openapi()


SCHEMA = schemathesis.openapi.from_dict(
    _document(),
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261121,
            "generation": {
                "mode": "all",  # valid input, and invalid input that must get a 4xx
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # An event stream never ends: read this many events, or until the timeout.
            "max-stream-events": 5,
        }
    ),
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# What exists in the database the current case runs against (seed()): path and query
# parameters and body fields of these names often name it, so that operations on
# existing things are exercised, not only their 404s.
KNOWN: dict[str, list[Any]] = {}


def _mix(values: Any) -> st.SearchStrategy[Any]:
    """Each value that names something, or a known one of its kind (half the time)."""
    if not isinstance(values, dict):
        return st.just(values)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for k, v in values.items():
        pool = KNOWN.get(k)
        parts[k] = st.one_of(st.just(v), st.sampled_from(pool)) if pool else st.just(v)
    return st.fixed_dictionaries(parts)


@SCHEMA.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Path and query parameters and body fields name known things half the time.
    Set on the case, so schemathesis sees the change: a negative case whose invalid
    part was replaced by a valid one is judged as the positive case it became."""

    def apply(parts: tuple[Any, Any, Any]) -> Any:
        path, query, body = parts
        if path != case.path_parameters:
            case.path_parameters = path
        if query != case.query:
            case.query = query
        if body != case.body:
            case.body = body
        return case

    return st.tuples(_mix(case.path_parameters), _mix(case.query), _mix(case.body)).map(apply)


# ------------------------------------------------------------------ the server


@dataclass
class Backend:
    """Where the databases live: `clone()` gives a fresh copy of the seeded template
    (see seed_template), `drop(url)` removes one."""

    clone: Callable[[], str]
    drop: Callable[[str], None] = lambda url: None


@dataclass
class Stats:
    statuses: dict[str, collections.Counter[int]] = field(default_factory=dict)


STATS = Stats()


@pytest.fixture
def api_base(backend: Backend) -> Iterator[str]:
    """A fresh server on a fresh copy of the seeded database (per operation)."""
    url = backend.clone()
    db = Database(url)
    try:
        settings = Settings(database_url=url, heartbeat_timeout_s=3600, long_poll_max_s=0.05)
        app = create_app(settings, db)
        with radius_on_loopback(), serve(app) as base:
            yield base
    finally:
        db.dispose()
        backend.drop(url)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@SCHEMA.parametrize()
@settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_operation(case: Any, api_base: str, http: requests.Session) -> None:
    # An event stream is read for the timeout in total (or its first events): short.
    timeout = 2 if case.path == "/api/v1/events/stream" else 30
    r = case.call_and_validate(base_url=api_base, session=http, checks=CHECKS, timeout=timeout)
    STATS.statuses.setdefault(case.operation.label, collections.Counter())[r.status_code] += 1


@contextlib.contextmanager
def radius_on_loopback() -> Iterator[None]:
    """The NetFATE service's RADIUS server on 127.0.0.1, a free port (not 1812)."""
    old = os.environ.get(ENV_LISTEN)
    os.environ[ENV_LISTEN] = "127.0.0.1:0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[ENV_LISTEN]
        else:
            os.environ[ENV_LISTEN] = old


def seed_template(url: str) -> None:
    """Migrate and seed the database at `url` through a real server; remember what
    it holds in KNOWN (the same in every copy)."""
    db = Database(url)
    try:
        with radius_on_loopback(), serve(create_app(Settings(database_url=url), db)) as base:
            known = seed(base)
    finally:
        db.dispose()
    KNOWN.clear()
    KNOWN.update(known)
