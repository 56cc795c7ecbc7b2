"""The NetFATE service in one orchestrator process: API, tables, embedded RADIUS
server over UDP on 127.0.0.1, and the paper's policy (a)-(d) against the platform's
coordinator (the agents' reports are applied directly, as an agent would send them)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import authn
from netfate.agent.instances import vet
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.proto.radius import Attr, ClientCore, Code, DasCore, DisconnectRequested, Packet
from netfate.proto.radius import packet as rp
from netfate.services.firewall import SERVICE as FIREWALL
from netfate.services.firewall.tables import FirewallSettingRow
from netfate.store.db import Database
from netfate.vnf.firewall.function import VSA_RULES_CHUNK, VSA_RULES_VERSION

EXAMPLE = FIREWALL.topology("firewall.yaml")
SECRET = b"portal-secret"


class Env:
    def __init__(self, client: TestClient, db: Database) -> None:
        self.api = client
        self.db = db
        st = client.get("/api/v1/firewall/radius/status").json()
        self.port = st["listeners"][0]["port"]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(3.0)

    def radius(self, core: ClientCore, wire: bytes, expect_answer: bool = True) -> Packet | None:
        self.sock.sendto(wire, ("127.0.0.1", self.port))
        if not expect_answer:
            self.sock.settimeout(0.3)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        finally:
            self.sock.settimeout(3.0)
        evs = core.receive(data, time.monotonic())
        return evs[0].response if evs else None

    def login(self, user: str, pw: str, nas: str, ip: str = "192.168.1.2") -> Packet | None:
        core = ClientCore(SECRET)
        _, wire = core.access_request(
            user,
            pw.encode(),
            [
                (Attr.NAS_IDENTIFIER, nas),
                (Attr.FRAMED_IP_ADDRESS, ip),
                (Attr.CALLING_STATION_ID, "02-6e-66-00-00-01"),
            ],
            time.monotonic(),
        )
        return self.radius(core, wire)

    def account(self, attrs: list[tuple[int, rp.Value]]) -> Packet | None:
        """One Accounting-Request from a NAS on 127.0.0.1; its answer."""
        core = ClientCore(SECRET)
        _, wire = core.accounting_request(attrs, time.monotonic())
        return self.radius(core, wire)

    def tables(self) -> dict[str, Any]:
        r: dict[str, Any] = self.api.get("/api/v1/firewall/tables").json()
        return r

    def events(self) -> list[str]:
        return [e["kind"] for e in self.api.get("/api/v1/events?limit=500").json()]

    def wait(self, what: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            v = what()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.05)

    def report(self, node: str, report: dict[str, Any]) -> None:
        with self.db.session() as s:
            nfv.apply_report(s, node, report)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "127.0.0.1:0")
    db = Database(f"sqlite:///{tmp_path}/o.db")
    app = create_app(
        Settings(database_url=db.url, topology=EXAMPLE, heartbeat_timeout_s=3600),
        db,
        services=[FIREWALL],
    )
    with authn.client(app) as client:
        e = Env(client, db)
        r = client.post(
            "/api/v1/firewall/radius/clients",
            json={"address": "127.0.0.1", "secret": SECRET.decode(), "name": "t"},
        )
        assert r.status_code == 201
        r = client.post(
            "/api/v1/firewall/users",
            json={
                "name": "alice",
                "password": "wonderland",
                "host": "client1",
                "ip": "192.168.1.2",
                "idle_timeout": 3600,
                "rules": {
                    "rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": 8081}]
                },
            },
        )
        assert r.status_code == 201, r.text
        for node in ("cpe1", "cpe2", "pe1"):
            with db.session() as s:
                nfv.register_agent(s, node, f"127.0.0.1:{9000 + len(node)}", None)
        yield e
        e.sock.close()


def test_accept_creates_firewall_at_access_cpe(env: Env) -> None:
    resp = env.login("alice", "wonderland", "cpe1")
    assert resp is not None and resp.code == Code.ACCESS_ACCEPT
    assert resp.integer(Attr.SESSION_TIMEOUT) == 3600
    assert resp.integer(Attr.IDLE_TIMEOUT) == 3600
    t = env.tables()
    (u,) = t["users"]
    assert (u["status"], u["access_node"]) == ("online", "cpe1")
    (fn,) = t["functions"]
    assert fn["node"] == "cpe1" and fn["instance"] and not fn["active"]
    (fwd,) = t["forwarding"]
    inst = env.api.get(f"/api/v1/instances/{fn['instance']}").json()
    assert inst["node"] == "cpe1" and inst["descriptor"] == "personal-firewall"
    assert fwd["function_mac"] == inst["mac"] and fwd["mac"] == "02:6e:66:00:00:01"
    assert inst["config"]["rules"]["rules"][0]["port"] == 8081
    assert "UserLoggedIn" in env.events() and "FirewallCreated" in env.events()


def test_the_firewall_a_login_makes_passes_its_schema_at_the_agent(env: Env) -> None:
    """The configuration the policy gives a firewall (the user, their address, their
    rules, the demo's accounting setting) is one its schema takes: the agent runs it."""
    acct = {"server": "10.10.0.1:1813", "secret": "acct-secret", "interval": 0.5}
    assert env.api.put("/api/v1/firewall/settings", json={"accounting": acct}).is_success
    rules = {"default_in": "deny", "rules": [
        {"action": "allow", "direction": "in", "proto": "tcp", "port": "8000-8100",
         "address": "10.0.0.0/8"},
        {"action": "deny", "direction": "both", "proto": "icmp"}]}  # fmt: skip
    assert env.api.put("/api/v1/firewall/users/alice/rules", json=rules).is_success
    resp = env.login("alice", "wonderland", "cpe1")
    assert resp is not None and resp.code == Code.ACCESS_ACCEPT
    desired = env.api.get("/api/v1/agents/cpe1/desired").json()["instances"]
    (spec,) = [i for i in desired if i["function"] == "netfate.vnf.firewall:Firewall"]
    assert spec["config"]["accounting"] == acct and spec["config"]["user_ip"] == "192.168.1.2"
    vet(spec, Path("/var/lib/netfate/images"))  # the agent's check before it spawns
    # The same with the user's address made wrong: refused (the check is live).
    with pytest.raises(ValueError, match="user_ip"):
        vet({**spec, "config": {**spec["config"], "user_ip": "192.168.1"}}, Path("/tmp"))


def test_wrong_password_rejected_and_starts_nothing(env: Env) -> None:
    resp = env.login("alice", "nope", "cpe1")
    assert resp is not None and resp.code == Code.ACCESS_REJECT
    resp = env.login("mallory", "x", "cpe1")
    assert resp is not None and resp.code == Code.ACCESS_REJECT
    assert env.api.get("/api/v1/instances").json() == []
    assert env.tables()["users"][0]["status"] == "offline"
    assert env.events().count("UserLoginRejected") == 2


def test_wrong_secret_and_missing_message_authenticator_dropped(env: Env) -> None:
    core = ClientCore(b"not-the-secret")
    _, wire = core.access_request("alice", b"wonderland", [], time.monotonic())
    assert env.radius(core, wire, expect_answer=False) is None
    # A correct PAP request without Message-Authenticator (pre-BlastRADIUS style).
    ra = bytes(range(16))
    pkt = Packet(Code.ACCESS_REQUEST, 9, ra)
    pkt.add(Attr.USER_NAME, "alice")
    pkt.attributes.append((2, rp.hide_password(b"wonderland", SECRET, ra)))
    assert env.radius(core, rp.encode_request(pkt, SECRET, False), expect_answer=False) is None
    st = env.api.get("/api/v1/firewall/radius/status").json()
    assert st["counters"]["drops"] == 2
    assert any("Message-Authenticator" in d for d in st["recent_drops"])
    assert env.api.get("/api/v1/instances").json() == []


def test_move_migrates_then_tables_follow_and_idle_releases(env: Env) -> None:
    env.login("alice", "wonderland", "cpe1")
    iid = env.tables()["functions"][0]["instance"]
    env.report("cpe1", {"instances": [{"id": iid, "status": "running", "role": "active"}]})
    env.wait(lambda: env.tables()["functions"][0]["active"])
    resp = env.login("alice", "wonderland", "cpe2")
    assert resp is not None and resp.code == Code.ACCESS_ACCEPT
    inst = env.api.get(f"/api/v1/instances/{iid}").json()
    assert inst["state"] == "migrating"
    (mig,) = inst["migrations"]
    assert mig["target"] == "cpe2"
    assert env.tables()["users"][0]["access_node"] == "cpe2"
    env.report(
        "cpe2",
        {
            "migrations": [
                {"id": mig["id"], "status": "done", "downtime_ms": 2.5, "state_bytes": 900}
            ]
        },
    )
    env.wait(lambda: env.tables()["functions"][0]["node"] == "cpe2")
    assert env.tables()["forwarding"][0]["node"] == "cpe2"
    assert "FirewallMigrated" in env.events()
    # (d): shorten the idle time; the policy loop releases the firewall.
    env.api.patch("/api/v1/firewall/users/alice", json={"idle_timeout": 1})
    env.wait(lambda: env.tables()["users"][0]["status"] == "offline")
    t = env.tables()
    assert not t["functions"][0]["active"] and t["forwarding"][0]["instance"] is None
    assert env.api.get(f"/api/v1/instances/{iid}").json()["state"] == "stopping"
    assert {"UserWentIdle", "FirewallReleased"} <= set(env.events())


def test_move_to_full_cpe_keeps_firewall_in_place(env: Env) -> None:
    env.login("alice", "wonderland", "cpe1")
    iid = env.tables()["functions"][0]["instance"]
    env.report("cpe1", {"instances": [{"id": iid, "status": "running", "role": "active"}]})
    with env.db.session() as s:
        from netfate.store.tables import NodeRow

        node = s.get(NodeRow, "cpe2")
        assert node is not None
        node.cpu = 0.0
    resp = env.login("alice", "wonderland", "cpe2")
    assert resp is not None and resp.code == Code.ACCESS_ACCEPT
    assert env.api.get(f"/api/v1/instances/{iid}").json()["node"] == "cpe1"
    assert "FirewallMigrationRefused" in env.events()
    # The policy loop (every 0.5 s) does not ask again until the next login.
    env.wait(lambda: env.tables()["functions"][0]["active"])
    time.sleep(1.2)
    assert env.events().count("FirewallMigrationRefused") == 1


def test_first_login_at_full_cpe_is_rejected(env: Env) -> None:
    with env.db.session() as s:
        from netfate.store.tables import NodeRow

        node = s.get(NodeRow, "cpe1")
        assert node is not None
        node.cpu = 0.0
    resp = env.login("alice", "wonderland", "cpe1")
    assert resp is not None and resp.code == Code.ACCESS_REJECT
    assert env.tables()["users"][0]["status"] == "offline"


def test_rules_atomic_and_delivered_over_accounting(env: Env) -> None:
    bad = {
        "rules": [
            {"action": "deny", "direction": "out", "proto": "tcp", "port": 22},
            {"action": "deny", "direction": "sideways"},
        ]
    }
    r = env.api.put("/api/v1/firewall/users/alice/rules", json=bad)
    assert r.status_code == 422 and "rule 2" in r.text
    assert env.api.get("/api/v1/firewall/users/alice/rules").json()["version"] == 1
    good = {
        "default_in": "deny",
        "rules": [{"action": "allow", "direction": "in", "proto": "tcp", "port": 22}],
    }
    r = env.api.put("/api/v1/firewall/users/alice/rules", json=good)
    assert r.status_code == 200 and r.json()["version"] == 2
    # The firewall's Interim-Update reports version 1: the answer carries version 2.
    core = ClientCore(SECRET)
    _, wire = core.accounting_request(
        [
            (Attr.ACCT_STATUS_TYPE, 3),
            (Attr.ACCT_SESSION_ID, "i-x"),
            (Attr.USER_NAME, "alice"),
            (Attr.NAS_IDENTIFIER, "fw:i-x"),
            rp.vsa(VSA_RULES_VERSION, rp.U32.pack(1)),
        ],
        time.monotonic(),
    )
    resp = env.radius(core, wire)
    assert resp is not None and resp.code == Code.ACCOUNTING_RESPONSE
    subs = rp.vsas(resp)
    assert (VSA_RULES_VERSION, rp.U32.pack(2)) in subs
    import json

    doc = json.loads(b"".join(v for t, v in subs if t == VSA_RULES_CHUNK))
    assert doc["rules"][0]["port"] == 22
    acct = env.api.get("/api/v1/firewall/accounting?user=alice").json()
    assert acct[0]["status"] == "interim"


def test_portal_accounting_stop_releases(env: Env) -> None:
    env.login("alice", "wonderland", "cpe1")
    for status in (1, 3, 2):
        resp = env.account(
            [
                (Attr.ACCT_STATUS_TYPE, status),
                (Attr.ACCT_SESSION_ID, "s1"),
                (Attr.USER_NAME, "alice"),
                (Attr.NAS_IDENTIFIER, "cpe1"),
                (Attr.ACCT_SESSION_TIME, 5),
            ]
        )
        assert resp is not None and resp.code == Code.ACCOUNTING_RESPONSE
    assert env.tables()["users"][0]["status"] == "offline"
    assert [a["status"] for a in env.api.get("/api/v1/firewall/accounting").json()] == [
        "stop",
        "interim",
        "start",
    ]


def test_radius_status_shows_disconnects_and_remembered_nas_sessions(env: Env) -> None:
    """A portal's session is remembered from its Start; a logout ends it with an RFC 5176
    Disconnect-Request, which the NAS (a DasCore on 127.0.0.1) acknowledges."""
    dm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dm.bind(("127.0.0.1", 0))
    dm.settimeout(5.0)
    with env.db.session() as s:
        s.add(FirewallSettingRow(key="dm_port", value=dm.getsockname()[1]))
    das = DasCore({"127.0.0.1": SECRET})

    def status() -> dict[str, Any]:
        r: dict[str, Any] = env.api.get("/api/v1/firewall/radius/status").json()
        return r

    zero = {"sent": 0, "acked": 0, "naked": 0, "failed": 0, "refused": 0}
    assert (status()["disconnect"], status()["nas_sessions"]) == (zero, 0)
    with dm:
        env.login("alice", "wonderland", "cpe1")
        resp = env.account(
            [
                (Attr.ACCT_STATUS_TYPE, 1),
                (Attr.ACCT_SESSION_ID, "cpe1-s1"),
                (Attr.USER_NAME, "alice"),
                (Attr.NAS_IDENTIFIER, "cpe1"),
            ]
        )
        assert resp is not None and resp.code == Code.ACCOUNTING_RESPONSE
        assert (status()["disconnect"], status()["nas_sessions"]) == (zero, 1)
        assert env.api.post("/api/v1/firewall/users/alice/logout").status_code == 200
        data, peer = dm.recvfrom(4096)
        (ev,) = das.receive(data, peer, 0.0)
        assert isinstance(ev, DisconnectRequested) and ev.session_id == "cpe1-s1"
        dm.sendto(das.ack(ev), peer)
        # The session is marked disconnected on the sessions worker once the request
        # went out, which a loaded machine may finish after the NAS's ack arrived.
        env.wait(lambda: status()["disconnect"]["acked"] == 1 and status()["nas_sessions"] == 0)
    assert status()["disconnect"] == {**zero, "sent": 1, "acked": 1}
    assert status()["nas_sessions"] == 0
