"""Property-based fuzzing of the whole REST API from its OpenAPI document (schemathesis).

Collected twice: by tests/fuzz/test_api_fuzz_sqlite.py and by
tests/netns/test_api_fuzz_postgres.py (a real PostgreSQL server), each defining the
`backend` fixture. Every operation of the document (core, SDN and every service's
router) is one test; each runs against a fresh copy of a seeded database (a loaded
topology, registered agents, running instances, intents, users, personal networks,
shares, a live stream with a viewer, a catalog subscription) behind a real uvicorn
server, so that operations on existing things reach their handlers rather than
only answering 404.

Signed in: each request carries the operator's token where the operation is the
operator's, else a token of a role it declares (the agent of the path's node, the
controller, the user or provider the request names), all made in the seeded
template (`AUTH`); a principal it names that was not made (a generated name) signs
in as its role's default one, which the identity layer refuses (403, documented).

Required of every answer: never 5xx; its status is documented for the operation;
its body conforms to the documented schema (error bodies included); for invalid
input (schemathesis's negative mode) a 4xx. Generation is derandomized (fixed
seed, no example database), so CI runs the same cases every time.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import re
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
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

import authn
from apiserver import serve
from netfate import services
from netfate.contract import Role
from netfate.model.ratelimit import WindowCounter
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.identity import accounts
from netfate.services.firewall.radius import ENV_LISTEN
from netfate.store.db import Database

SERVICES = services.registered()
"""The registered services, as `netfate orchestrator` serves them."""

EXAMPLES = int(os.environ.get("NETFATE_FUZZ_EXAMPLES", "25"))
"""Generated cases per operation and mode (explicit examples and boundary cases come on top)."""

TOPO: dict[str, Any] = {
    "name": "fuzz",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 4},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 4},
        "cpe3": {"kind": "cpe", "lan": "192.168.3.0/24", "cpu": 4},
        "pe1": {
            "kind": "pe",
            "lan": "10.9.0.0/24",
            "cpu": 8,
        },  # a LAN: streaming functions get addresses
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
        {"a": "cpe3", "b": "pe1", "delay": "5ms"},
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
    "cpe3": [{"name": "c3up", "ofport": 1, "peer": "node:pe1"}],
    "pe1": [
        {"name": "p1", "ofport": 1, "peer": "node:cpe1"},
        {"name": "p2", "ofport": 2, "peer": "node:cpe2"},
        {"name": "p3", "ofport": 3, "peer": "node:core1"},
        {"name": "p4", "ofport": 4, "peer": "node:cpe3"},
    ],
    "core1": [{"name": "k1", "ofport": 1, "peer": "node:pe1"}],
}
ALICE, BOB = "alice@home.example", "bob@hotel.example"
CAROL = "carol@home.example"
"""A user with no PN: her first catalog subscription makes one (at cpe3)."""
ALICE_AUTH = {"Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()}
RULES = {"rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": 8081}]}
START = 4102444800.0
"""Streaming events start on 2100-01-01: never over already, whenever the fuzz runs."""
LECTURE = {"provider": "uni", "title": "Lecture", "start": START, "duration_s": 3600}
CHAIN = """
name: sensor-archive
blocks:
  - {name: collector, function: counter, cpu: 0.2}
  - {name: archive, function: forwarder, storage_mb: 100}
sla: {latency_ms: 50}
"""
"""The catalog's chain (built-in functions only), published twice: a subscription
to version 1 can upgrade to 2."""

# Valid requests, tried first for each operation (explicit examples): each reaches
# its handler's success path on the seeded database. "@KIND:N" (after a prefix or not)
# stands for the N-th known thing of that kind (KNOWN, filled when the database is seeded).
VALID: dict[str, list[dict[str, Any]]] = {
    "PUT /api/v1/topology": [{"body": TOPO}],
    "POST /api/v1/instances": [{"body": {"descriptor": "counter", "serves": "laptop1"}}],
    "POST /api/v1/descriptors": [
        {
            "body": {
                "name": "fuzzed",
                "function": "counter",
                "cpu": 0.1,
                "memory_mb": 64,
                "config": {"port": 9000},
            }
        }
    ],
    "POST /api/v1/instances/{iid}/migrate": [{"path": {"iid": "@iid:0"}, "body": {"node": "pe1"}}],
    "PATCH /api/v1/instances/{iid}": [
        {"path": {"iid": "@iid:0"}, "body": {"config": {"port": 7778}}}
    ],
    "POST /api/v1/intents": [
        {
            "body": {
                "kind": "connectivity",
                "id": "tv-media",
                "a": "host:tv",
                "b": "host:mediaserver",
            }
        }
    ],
    "POST /api/v1/sdn/events": [
        {
            "body": {
                "kind": "host_seen",
                "node": "cpe1",
                "port": "c1h",
                "ofport": 1,
                "mac": "02:00:00:00:01:01",
                "time": 1.0,
            }
        },
        {"body": {"kind": "installed", "version": "0123456789abcdef", "time": 1.0}},
    ],
    "PATCH /api/v1/firewall/users/{name}": [
        {"path": {"name": "alice"}, "body": {"idle_timeout": 90}}
    ],
    "GET /api/v1/firewall/users/{name}/rules": [{"path": {"name": "alice"}}],
    "PUT /api/v1/firewall/users/{name}/rules": [{"path": {"name": "alice"}, "body": RULES}],
    "GET /api/v1/firewall/me/rules": [{"headers": ALICE_AUTH}],
    "PUT /api/v1/firewall/me/rules": [{"headers": ALICE_AUTH, "body": RULES}],
    "POST /api/v1/sharing/pns": [{"body": {"email": "carol@x.example", "node": "cpe3"}}],
    "POST /api/v1/sharing/pns/{email}/devices": [
        {"path": {"email": ALICE}, "body": {"name": "printer", "ip": "192.168.1.60"}}
    ],
    "PUT /api/v1/sharing/pns/{email}/inventory": [
        {
            "path": {"email": ALICE},
            "body": {
                "devices": [
                    {
                        "ip": "192.168.1.100",
                        "mac": "02:00:00:00:00:09",
                        "name": "phone",
                        "source": "lease",
                    }
                ]
            },
        }
    ],
    "POST /api/v1/sharing/shares": [{"body": {"owner": BOB, "device": "tv", "recipient": ALICE}}],
    "POST /api/v1/sharing/invitations": [{"body": {"by": BOB}}],
    "GET /api/v1/sharing/invitations": [{"query": {"pn": BOB}}],
    "POST /api/v1/sharing/shares/{sid}/accept": [{"path": {"sid": "@sid:1"}, "body": {"by": BOB}}],
    "POST /api/v1/sharing/shares/{sid}/decline": [{"path": {"sid": "@sid:1"}, "body": {"by": BOB}}],
    "POST /api/v1/usbip/functions": [
        {
            "body": {
                "descriptor": "hrh-climate",
                "serves": "laptop1",
                "config": {
                    "server": "192.168.1.2",
                    "tls": {"ca": "/pki/ca.pem", "cert": "/pki/isp.pem", "key": "/pki/isp.key"},
                },
            }
        }
    ],
    "GET /api/v1/usbip/placement": [{"query": {"descriptor": "hrh-alarm", "serves": "laptop1"}}],
    "POST /api/v1/agents/{node}/report": [
        {"path": {"node": "cpe1"}, "body": {"ports": PORTS["cpe1"]}}
    ],
    "GET /api/v1/nodes/{node}/flows": [{"path": {"node": "cpe1"}}],
    "GET /api/v1/nodes/{name}": [{"path": {"name": "cpe1"}}],
    "PUT /api/v1/nodes/{name}/power": [{"path": {"name": "cpe3"}, "body": {"state": "on"}}],
    "PUT /api/v1/nodes/{name}/predeploy": [
        {"path": {"name": "cpe1"}, "body": {"storage_mb": 1.0, "standbys": 1}}
    ],
    "GET /api/v1/instances/{iid}": [{"path": {"iid": "@iid:0"}}],
    "DELETE /api/v1/instances/{iid}": [{"path": {"iid": "@iid:1"}}],
    "GET /api/v1/intents/{intent_id}": [{"path": {"intent_id": "laptop-tv"}}],
    "GET /api/v1/agents/{node}/desired": [{"path": {"node": "cpe1"}}],
    "POST /api/v1/agents/{node}/register": [
        {"path": {"node": "cpe2"}, "body": {"endpoint": "127.0.0.1:7001"}}
    ],
    "GET /api/v1/firewall/users/{name}": [{"path": {"name": "alice"}}],
    "GET /api/v1/sharing/pns/{email}": [{"path": {"email": ALICE}}],
    "GET /api/v1/sharing/pns/{email}/devices": [{"path": {"email": ALICE}}],
    "GET /api/v1/sharing/pns/{email}/gateway": [{"path": {"email": ALICE}}],
    "PUT /api/v1/sharing/pns/{email}/gateway": [
        {
            "path": {"email": ALICE},
            "body": {
                "dhcp": {"first": "192.168.1.100", "last": "192.168.1.149"},
                "forwards": [{"proto": "tcp", "port": 8080, "to": "192.168.1.20", "to_port": 80}],
                "allow": [{"proto": "udp", "port": 9001}],
            },
        }
    ],
    "POST /api/v1/sharing/pns/{email}/vhg": [{"path": {"email": ALICE}}],
    "GET /api/v1/sharing/shares/{sid}": [{"path": {"sid": "@sid:0"}}],
    "DELETE /api/v1/intents/{intent_id}": [{"path": {"intent_id": "laptop-tv"}}],
    "POST /api/v1/firewall/users/{name}/logout": [{"path": {"name": "alice"}}],
    "DELETE /api/v1/firewall/users/{name}": [{"path": {"name": "bob"}}],
    "POST /api/v1/firewall/radius/clients": [{"body": {"address": "10.1.0.0/16", "secret": "x"}}],
    "DELETE /api/v1/firewall/radius/clients/{address}": [{"path": {"address": "127.0.0.1"}}],
    "POST /api/v1/firewall/radius/listeners": [{"body": {"address": "127.0.0.1", "port": 0}}],
    "POST /api/v1/usbip/tunnels": [
        {"body": {"name": "t2", "a": "instance:@iid:2", "b": "instance:@iid:0", "port": 3240}}
    ],
    "DELETE /api/v1/usbip/tunnels/{name}": [{"path": {"name": "cam-usb"}}],
    "POST /api/v1/sharing/shares/{sid}/revoke": [
        {"path": {"sid": "@sid:0"}, "body": {"by": ALICE}}
    ],
    "POST /api/v1/streaming/providers": [{"body": {"name": "tv", "title": "TV", "pe": "pe1"}}],
    "POST /api/v1/streaming/events": [{"body": LECTURE}],
    "GET /api/v1/streaming/events/{eid}": [{"path": {"eid": "@eid:0"}}],
    "POST /api/v1/streaming/events/{eid}/start": [{"path": {"eid": "@eid:1"}}],
    "POST /api/v1/streaming/events/{eid}/stop": [{"path": {"eid": "@eid:0"}}],
    "GET /api/v1/streaming/events/{eid}/ingest": [{"path": {"eid": "@eid:2"}}],
    "POST /api/v1/streaming/contents/{cid}/viewers": [
        # bob joins as himself (a user names only itself; the operator may name anyone)
        {
            "path": {"cid": "@cid:0"},
            "body": {"client": "phone", "host": "laptop1"},
            "headers": {"authorization": "@as-user:bob"},
        }
    ],
    "GET /api/v1/streaming/contents/{cid}/viewers": [{"path": {"cid": "@cid:0"}}],
    "DELETE /api/v1/streaming/contents/{cid}/viewers/{client}": [
        {"path": {"cid": "@cid:0", "client": "@client:0"}, "query": {"user": "alice"}}
    ],
    "POST /api/v1/streaming/recordings": [{"body": {"user": "bob", "event": "@eid:1"}}],
    "DELETE /api/v1/streaming/recordings/{rid}": [{"path": {"rid": "@rid:0"}}],
    "POST /api/v1/streaming/reservations": [{"body": {"user": "bob", "event": "@eid:1"}}],
    "DELETE /api/v1/streaming/reservations/{rid}": [{"path": {"rid": "@rid:1"}}],
    "POST /api/v1/streaming/events/{eid}/cancel": [{"path": {"eid": "@eid:3"}}],
    # the viewers' portals kept at pe1 (the fuzz topology's one PE)
    "PUT /api/v1/streaming/portals": [{"body": {"pes": ["pe1"]}}],
    # bob's recording, played from pe1 (the seed plays it once, so a stop finds it too)
    "POST /api/v1/streaming/recordings/{rid}/play": [
        {
            "path": {"rid": "@rid:2"},
            "body": {"pe": "pe1"},
            "headers": {"authorization": "@as-user:bob"},
        }
    ],
    "DELETE /api/v1/streaming/recordings/{rid}/play": [
        {"path": {"rid": "@rid:2"}, "headers": {"authorization": "@as-user:bob"}}
    ],
    "POST /api/v1/catalog/chains": [{"body": {"provider": "acme", "descriptor": CHAIN}}],
    "GET /api/v1/catalog/chains/{name}/versions": [{"path": {"name": "sensor-archive"}}],
    "GET /api/v1/catalog/chains/{name}/versions/{version}": [
        {"path": {"name": "sensor-archive", "version": 1}}
    ],
    "GET /api/v1/catalog/providers/{provider}/subscriptions": [{"path": {"provider": "acme"}}],
    "POST /api/v1/catalog/subscriptions": [
        {"body": {"user": "bob", "chain": "sensor-archive", "at": "cpe2"}},
        # a first subscription that makes its user's PN (cpe3's LAN is no PN yet)
        {"body": {"user": CAROL, "chain": "sensor-archive", "at": "cpe3"}},
        # a user whose PN (ALICE's, at cpe1) the mediaserver joins, by its name
        {
            "body": {
                "user": ALICE,
                "chain": "sensor-archive",
                "at": "cpe1",
                "pn_devices": ["mediaserver"],
            }
        },
    ],
    "GET /api/v1/catalog/subscriptions/{sid}": [{"path": {"sid": "@sid:2"}}],
    "POST /api/v1/catalog/subscriptions/{sid}/upgrade": [  # alice's: she upgrades it
        {"path": {"sid": "@sid:2"}, "body": {}, "headers": {"authorization": "@as-user:alice"}}
    ],
    "DELETE /api/v1/catalog/subscriptions/{sid}": [{"path": {"sid": "@sid:2"}}],
    "GET /api/v1/catalog/positions/{user}": [{"path": {"user": "alice"}}],
    # every user the asker may know of (the operator: all), and the user's own
    "GET /api/v1/catalog/positions": [
        {"query": {"history": 3}},
        {"query": {"history": 0}, "headers": {"authorization": "@as-user:alice"}},
        {"query": {"history": 2, "limit": 1, "after": "alice"}},  # the page after alice
    ],
    "GET /api/v1/catalog/placements": [{"headers": {"authorization": "@as-user:alice"}}],
    # which of a PN owner's devices join their PN (ALICE's at cpe1 holds laptop1)
    "PUT /api/v1/catalog/users/{user}/devices": [
        {"path": {"user": ALICE}, "body": {"devices": ["laptop1"]}}
    ],
    "DELETE /api/v1/streaming/app/recordings/{rid}": [
        {"path": {"rid": "@rid:0"}, "query": {"user": "alice"}}
    ],
    # identity (the accounts authn made in the template)
    "POST /api/v1/auth/token": [{"body": {"name": authn.OPERATOR, "password": authn.PASSWORD}}],
    "POST /api/v1/auth/session": [{"body": {"name": authn.USER, "password": authn.PASSWORD}}],
    "GET /api/v1/accounts/{name}": [{"path": {"name": authn.OPERATOR}}],
    "PATCH /api/v1/accounts/{name}": [{"path": {"name": authn.USER}, "body": {"disabled": False}}],
    "POST /api/v1/accounts/{name}/password": [{"path": {"name": authn.USER}, "body": {}}],
    "POST /api/v1/accounts/agents": [{"body": {"node": "cpe3"}}],
}


def seed(base: str, auth: httpx.Auth) -> dict[str, list[Any]]:
    """Fill a fresh orchestrator through its API; returns the names of what exists,
    by the parameter names that refer to them."""
    with httpx.Client(base_url=base + "/api/v1", timeout=30, auth=auth) as c:

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
        ok(c.post("/firewall/radius/clients", json={"address": "127.0.0.1", "secret": "s3cret"}))
        for user in ("alice", "bob"):
            ok(c.post("/firewall/users", json={"name": user, "password": "wonderland",
                                              "host": "laptop1"}))  # fmt: skip
        ok(c.post("/sharing/pns", json={"email": ALICE, "node": "cpe1"}))
        ok(c.post("/sharing/pns", json={"email": BOB, "node": "cpe2"}))
        ok(c.post(f"/sharing/pns/{ALICE}/devices", json={"name": "cam", "ip": "192.168.1.50"}))
        shares = [
            ok(c.post("/sharing/shares", json={"owner": ALICE, "device": d, "recipient": BOB}))
            for d in ("mediaserver", "cam")
        ]
        ok(c.post(f"/sharing/shares/{shares[0]['id']}/accept", json={"by": BOB}))
        tunnel = {"name": "cam-usb", "a": f"instance:{live[0]['id']}",
                  "b": f"instance:{live[1]['id']}"}  # fmt: skip
        ok(c.post("/usbip/tunnels", json=tunnel))
        # Streaming: a provider, one live event (a content, a viewer, a recording) and
        # one coming (a reservation).
        ok(c.post("/streaming/providers", json={"name": "uni", "title": "Uni", "pe": "pe1"}))
        events = [ok(c.post("/streaming/events", json=LECTURE))["id"] for _ in range(2)]
        content = ok(c.post(f"/streaming/events/{events[0]}/start"))["content"]["id"]
        tv1 = {"user": "alice", "client": "tv1", "pe": "pe1"}  # alice's tv1, joined for her
        ok(c.post(f"/streaming/contents/{content}/viewers", json=tv1))
        rec = ok(c.post("/streaming/recordings", json={"user": "alice", "event": events[0]}))
        res = ok(c.post("/streaming/reservations", json={"user": "alice", "event": events[1]}))
        # An RTMP event of the default provider account, live: its ingest URL is that
        # provider's alone (the fuzz signs a provider's route in as it).
        mine = {"name": authn.PROVIDER, "title": "Club", "pe": "pe1"}
        ok(c.post("/streaming/providers", json=mine))
        rtmp = {**LECTURE, "provider": authn.PROVIDER, "protocol": "rtmp"}
        events.append(ok(c.post("/streaming/events", json=rtmp))["id"])
        ok(c.post(f"/streaming/events/{events[2]}/start"))
        # One more coming (to cancel), and bob's recording of the live one, played.
        events.append(ok(c.post("/streaming/events", json=LECTURE))["id"])
        bobs = ok(c.post("/streaming/recordings", json={"user": "bob", "event": events[0]}))
        ok(c.post(f"/streaming/recordings/{bobs['id']}/play", json={"pe": "pe1"}))
        # Catalog: a chain, a subscription to its version 1, then version 2.
        ok(c.post("/catalog/chains", json={"provider": "acme", "descriptor": CHAIN}))
        alice = {"user": "alice", "chain": "sensor-archive", "at": "cpe1"}
        sub = ok(c.post("/catalog/subscriptions", json=alice))
        ok(c.post("/catalog/chains", json={"provider": "acme", "descriptor": CHAIN}))
        nodes = list(TOPO["nodes"])
        return dict(
            name=[*nodes, "alice", "bob", "cam-usb", "sensor-archive"],
            node=nodes,
            iid=[i["id"] for i in [*live, pending]],
            eid=events,
            event=events,
            cid=[content],
            client=["tv1"],
            rid=[rec["id"], res["id"], bobs["id"]],
            provider=["uni", "acme"],
            chain=["sensor-archive"],
            version=[1, 2],
            intent_id=["laptop-tv"],
            email=[ALICE, BOB],
            pn=[ALICE, BOB],
            owner=[ALICE],
            recipient=[BOB],
            by=[ALICE, BOB],
            sid=[*(s["id"] for s in shares), sub["id"]],
            address=["127.0.0.1"],
            user=["alice", "bob"],
            serves=["laptop1", "tv", "mediaserver"],
            host=["laptop1", "tv"],
            descriptor=["counter", "hrh-alarm", "hrh-climate"],
            device=["mediaserver", "cam"],
            state=["running", "requested"],
        )


# ------------------------------------------------------------------ the schema


def _document() -> dict[str, Any]:
    """The OpenAPI document as the orchestrator serves it (it needs no database)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(Settings(database_url="sqlite://"), services=SERVICES).openapi()


GENERATION = {
    "mode": "all",  # valid input, and invalid input that must get a 4xx
    "max-examples": EXAMPLES,
    "deterministic": True,
    "database": "none",
}
STREAM_EXAMPLES = 5
"""The event stream's cases each take a read timeout when no event comes: fewer of
them (its one parameter is an integer, covered at its bounds all the same)."""
DOC = _document()
SCHEMA = schemathesis.openapi.from_dict(
    DOC,
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261121,
            "generation": GENERATION,
            # An event stream never ends: read this many events, or until the timeout.
            "max-stream-events": 5,
            "operations": [
                {
                    "include-path": "/api/v1/events/stream",
                    "generation": {**GENERATION, "max-examples": STREAM_EXAMPLES},
                }
            ],
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


# Values at the extremes, mixed into path and query parameters and body fields now
# and then: integers past 32 and 64 bits, long strings, non-ASCII and control text.
EXTREMES: list[Any] = [
    2**31,
    2**63,
    -(2**63) - 1,
    10**30,
    "x" * 4096,
    "é" * 1000,
    "\U0001f600" * 300,
    "\u202e\u0000\ufeff",
    "../../etc/passwd",
    "%00",
    " ",
]


def _mix(values: Any) -> st.SearchStrategy[Any]:
    """Each value as generated, or one that names a known thing of its kind, or an
    extreme one."""
    if not isinstance(values, dict):
        return st.just(values)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for k, v in values.items():
        choices = [st.just(v)]
        if k == "password":  # names nothing; a mixed one is only a failed sign-in
            parts[k] = choices[0]
            continue
        if pool := KNOWN.get(k):
            choices.append(st.sampled_from(pool))
        if isinstance(v, str):  # the same type: a number in text where text is asked
            choices.append(st.sampled_from([str(x) for x in EXTREMES]))
        elif isinstance(v, int) and not isinstance(v, bool):
            choices.append(st.sampled_from(EXTREMES))
        parts[k] = st.one_of(choices)
    return st.fixed_dictionaries(parts)


@SCHEMA.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    for req in VALID.get(context.operation.label, []):
        examples.append(
            context.operation.Case(
                path_parameters=req.get("path"),
                query=req.get("query"),
                headers=req.get("headers"),
                body=req.get("body", NOT_SET),
                media_type="application/json" if "body" in req else None,
            )
        )


def _resolve(value: Any) -> Any:
    """Placeholders "@KIND:N" (see VALID) replaced by what they stand for."""
    if isinstance(value, str) and (m := re.fullmatch(r"(.*?)@([a-z_]+):([0-9]+)", value)):
        known = KNOWN[m[2]][int(m[3])]
        return f"{m[1]}{known}" if m[1] else known
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


@SCHEMA.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Path and query parameters and body fields name known things, or are extreme,
    now and then. Set on the case, so schemathesis sees the change: a negative case
    whose invalid part was replaced by a valid one is judged as the positive case it
    became."""

    # The API ignores query parameters it does not declare, as HTTP APIs do (an
    # OpenAPI parameter list does not close the query string); schemathesis counts
    # them as invalid input. Only declared ones are sent.
    declared = {p.name for p in case.operation.query}

    def apply(parts: tuple[Any, Any, Any]) -> Any:
        path, query, body = parts
        if isinstance(query, dict):
            query = {k: v for k, v in query.items() if k in declared}
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
    """Where the databases live: `copy()` yields the URL of a fresh copy of the seeded
    template (see seed_template) and removes the copy once resumed. `statuses` counts
    the answers of each operation, by status."""

    copy: Callable[[], Iterator[str]]
    statuses: dict[str, collections.Counter[int]] = field(default_factory=dict)


@pytest.fixture
def api_base(backend: Backend) -> Iterator[str]:
    """A fresh server on a fresh copy of the seeded database (per operation)."""
    with contextlib.contextmanager(backend.copy)() as url:
        db = Database(url)
        try:
            settings = Settings(database_url=url, heartbeat_timeout_s=3600, long_poll_max_s=0.05)
            app = create_app(settings, db, services=SERVICES)
            # Sign-in failures are throttled per client (tests/unit/test_identity.py):
            # here every case comes from one client, whose failed sign-ins would
            # otherwise make the valid one a 429.
            app.state.identity.limits = accounts.Limits(
                per_client=WindowCounter(1 << 20, 60.0), per_account=WindowCounter(1 << 20, 300.0)
            )
            with radius_on_loopback(), serve(app) as base:
                yield base
        finally:
            db.dispose()


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
def test_operation(case: Any, api_base: str, http: requests.Session, backend: Backend) -> None:
    for name in ("path_parameters", "body"):
        value = getattr(case, name)
        if (resolved := _resolve(value)) != value:
            setattr(case, name, resolved)
    # An event stream is read for the timeout in total (or until its first events):
    # short, yet long enough for a busy machine to answer at all.
    timeout = 5 if case.path == "/api/v1/events/stream" else 30
    assert AUTH is not None
    op = DOC["paths"][case.operation.path][case.operation.method.lower()]
    roles = [Role(r) for r in op["x-roles"]]
    body = json.dumps(case.body).encode() if isinstance(case.body, dict) else b""
    signed = AUTH.headers_as(roles, case.path_parameters or {}, case.query or {}, body)
    said = {k.lower(): v for k, v in (case.headers or {}).items()}.get("authorization")
    if said is not None and said.startswith("@as-user:"):  # made by the user who owns it
        signed = AUTH.headers_as([Role.USER], {}, {"user": said[len("@as-user:") :]})
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        said = None
    # A case that brings its own Authorization (even an empty one: schemathesis's
    # invalid credentials) is sent as it is.
    if signed and said is None:
        case.headers = {**(case.headers or {}), **signed}
    r = case.call_and_validate(base_url=api_base, session=http, checks=CHECKS, timeout=timeout)
    backend.statuses.setdefault(case.operation.label, collections.Counter())[r.status_code] += 1


def test_every_operation_succeeded_at_least_once(backend: Backend) -> None:
    """The fuzz reached every handler's success path, not only its refusals: each
    operation answered 2xx at least once (runs after test_operation, in file order)."""
    labels = [op.ok().label for op in SCHEMA.get_all_operations()]
    summary = {k: dict(sorted(v.items())) for k, v in sorted(backend.statuses.items())}
    print(json.dumps({"examples": EXAMPLES, "operations": len(labels), "statuses": summary}))
    missing = [k for k in labels if k not in backend.statuses]
    assert not missing, f"operations not fuzzed: {missing}"
    never = [k for k in labels if not any(200 <= c < 300 for c in backend.statuses[k])]
    assert not never, f"operations that never succeeded: {never}"


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
        # No agent reports here: a long heartbeat timeout keeps the nodes up while
        # a slow machine seeds.
        app = create_app(
            Settings(database_url=url, heartbeat_timeout_s=3600), db, services=SERVICES
        )
        auth = authn.AsAllowed(app)
        with radius_on_loopback(), serve(app) as base:
            known = seed(base, auth)
        # Every principal a valid request names, and each role's default one, made
        # in the template: the copies hold them all.
        auth.premake(Role.OPERATOR)
        auth.premake(Role.CONTROLLER)
        auth.premake(Role.AGENT, [None, *TOPO["nodes"]])
        auth.premake(Role.USER, [None, *{*known["email"], *known["user"]}, CAROL])
        auth.premake(Role.PROVIDER)
        auth.make = False
    finally:
        db.dispose()
    KNOWN.clear()
    KNOWN.update(known)
    global AUTH
    AUTH = auth


AUTH: authn.AsAllowed | None = None
"""The fuzz's credentials (seed_template)."""
