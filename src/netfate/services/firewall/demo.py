"""The NetFATE paper's case study on the testbed (examples/netfate.yaml).

client1 logs in through the captive portal at cpe1; the orchestrator's RADIUS
server accepts, and the policy starts client1's personal firewall at cpe1.
client1 moves to cpe2 (its access port moves to cpe2's bridge) and logs in
there; the firewall migrates with its rule set and connection-tracking entries.
Then client1 goes quiet, and after the idle time the firewall is released.

check() verifies: no firewall before login (a); a port client1 blocked is
blocked at cpe1 and after the move at cpe2; a TCP connection opened at cpe1
carries on after the move; the release on idle (d); the tables and the event
timeline say so.

Traffic steering: the testbed runs netfate's SDN controller (`SDN = True`: bridges
in secure mode, nothing passes that no intent allows). The firewall service keeps
the intents equal to its tables (steering.py): before login client1's traffic to
server1 is steered through the portal of the CPE it is attached to (its web
requests get the login page), after login through its firewall, and the intent
names the instance, so the flows follow the firewall when it migrates. The
check proves that traffic crosses the firewall (its interface counters) and
nothing else: no route in any host or node is changed.

On a testbed without controller (`Testbed.up(..., sdn=False)`, as the handover
benchmark may run for comparison) intents are recorded but not enforced, and
the scenario steers by routing instead: client1's gateway is its portal, then its
firewall, and its CPE routes the traffic to client1 through the firewall.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate.demo.platform import Api, DemoFailed
from netfate.demo.sdn import rx_packets
from netfate.host import netns
from netfate.host.ovs import Vsctl
from netfate.model.lifecycle import MigrationPhase
from netfate.testbed.builder import Testbed

TOPOLOGY = Path(__file__).parent / "topologies" / "firewall.yaml"
SDN = True
Say = Callable[[str], None]
USER, PASSWORD = "alice", "alice-in-netfate"
ALLOWED_PORT, BLOCKED_PORT = 8080, 8081
IDLE_S = 8
RULES = {
    "default_in": "deny",
    "default_out": "allow",
    "rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": BLOCKED_PORT}],
}


def _ip(cidr: str) -> str:
    return cidr.split("/")[0]


class EchoServer:
    """TCP echo servers in a host's namespace (a thread per connection)."""

    def __init__(self, ns: str, ip: str, ports: list[int]) -> None:
        self.socks = []
        for port in ports:
            s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
            s.listen(16)
            self.socks.append(s)
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c: socket.socket) -> None:
        with c, contextlib.suppress(OSError):
            while data := c.recv(65536):
                c.sendall(data)

    def close(self) -> None:
        for s in self.socks:
            s.close()


def tcp_connect(ns: str, ip: str, port: int, timeout: float = 2.0) -> socket.socket | None:
    c = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect((ip, port))
    except OSError:
        c.close()
        return None
    return c


def echo(c: socket.socket, data: bytes) -> bool:
    try:
        c.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = c.recv(65536)
            if not chunk:
                return False
            got += chunk
        return got == data
    except OSError:
        return False


class Scenario:
    """The steps of the case study, shared by the demo check and bench/handover.py."""

    def __init__(self, tb: Testbed, say: Say) -> None:
        if tb.api_url is None or tb.ovs_db is None:
            raise DemoFailed("the testbed runs without orchestrator")
        self.tb, self.say = tb, say
        self.api = Api(tb.api_url, tb.api_token)
        self.secret = secrets.token_hex(12)
        self.server_ip = str(tb.state.hosts["server1"]["ip"])
        self.client_ip = str(tb.state.hosts["client1"]["ip"])
        self.client_ns = tb.netns_of("client1")
        self.portals: dict[str, str] = {}
        self.fw_ip = ""
        self.fw_id = ""
        self.fw_node = ""
        self.sdn = bool(tb.state.sdn)
        self.echo = EchoServer(tb.netns_of("server1"), self.server_ip, [ALLOWED_PORT, BLOCKED_PORT])

    def close(self) -> None:
        self.echo.close()

    # ------------------------------------------------------------ set-up

    def setup(self, idle_s: int = IDLE_S, interim: float = 5.0) -> None:
        """Listeners, clients, settings, the user, and a portal per CPE that sends an
        accounting Interim-Update every `interim` seconds."""
        api, tb = self.api, self.tb
        pe = tb.netns_of("pe1")
        radius_ip = "10.10.0.1"  # pe1's LAN gateway: where the orchestrator is reached
        for port in (1812, 1813):
            api(
                "POST",
                "/firewall/radius/listeners",
                {"address": radius_ip, "port": port, "netns": pe},
            )
        api(
            "POST",
            "/firewall/radius/clients",
            {"address": "192.168.0.0/16", "secret": self.secret, "name": "cpe LANs"},
        )
        api(
            "PUT",
            "/firewall/settings",
            {
                "steer_to": "host:server1",
                "accounting": {
                    "server": f"{radius_ip}:1813",
                    "secret": self.secret,
                    "interval": 0.5,
                },
            },
        )
        api(
            "POST",
            "/firewall/users",
            {
                "name": USER,
                "password": PASSWORD,
                "host": "client1",
                "ip": self.client_ip,
                "idle_timeout": idle_s,
                "rules": RULES,
            },
        )
        self.say(
            f"user {USER} registered (rules: deny outbound TCP {BLOCKED_PORT}; "
            f"idle time {idle_s} s); RADIUS at {radius_ip}:1812 in pe1"
        )
        for node in ("cpe1", "cpe2"):
            inst = api(
                "POST",
                "/instances",
                {
                    "descriptor": "captive-portal",
                    "node": node,
                    "name": f"portal-{node}",
                    "config": {
                        "node": node,
                        "port": 80,
                        "interim": interim,
                        "radius": {
                            "server": f"{radius_ip}:1812",
                            "acct_server": f"{radius_ip}:1813",
                            "secret": self.secret,
                        },
                        # The front door: a captive client signs in to its pages there.
                        "garden": [str(tb.topology.door_ip)] if tb.door_url else [],
                    },
                },
            )
            self.portals[node] = _ip(inst["ip"])
            api.wait_state(inst["id"], "running")
        self.say(f"captive portals running: {self.portals}")

    def firewall_instances(self) -> list[dict[str, Any]]:
        return [
            i
            for i in self.api("GET", "/instances")
            if i["descriptor"] == "personal-firewall" and i["state"] != "gone"
        ]

    # ------------------------------------------------------------ steps

    def route_client_via(self, gw: str) -> None:
        self.tb.exec("client1", ["ip", "route", "replace", "default", "via", gw])

    def login(self, node: str) -> float:
        """POST the login form to the portal of `node` from client1; returns the time
        the portal answered (its answer follows the RADIUS Access-Accept)."""
        portal = self.portals[node]
        # Reached through client1's gateway (the portal before login, the firewall
        # after): replies come back the same way, so the firewall sees both directions.
        r = self.tb.exec(
            "client1",
            [
                "curl",
                "-s",
                "-m",
                "10",
                "--data-urlencode",
                f"username={USER}",
                "--data-urlencode",
                f"password={PASSWORD}",
                f"http://{portal}/login",
            ],
            check=False,
        )
        t = time.time()
        if "Logged in as" not in r.stdout:
            raise DemoFailed(f"login at {node} failed: {r.stdout[-300:]} {r.stderr[-200:]}")
        return t

    def wait_firewall_running(self, node: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            t = self.api("GET", "/firewall/tables")
            fn = next((f for f in t["functions"] if f["user"] == USER), None)
            if fn and fn["active"] and fn["node"] == node:
                inst: dict[str, Any] = self.api("GET", f"/instances/{fn['instance']}")
                if inst["state"] == "running":
                    self.fw_id, self.fw_ip = inst["id"], _ip(inst["ip"])
                    self.fw_node = node
                    return inst
            if time.monotonic() > deadline:
                raise DemoFailed(f"{USER}'s firewall not running at {node} after {timeout} s: {fn}")
            time.sleep(0.05)

    def intent(self, iid: str) -> dict[str, Any] | None:
        for i in self.api("GET", "/intents"):
            if i["intent"]["id"] == iid:
                found: dict[str, Any] = i
                return found
        return None

    def wait_captive(self, timeout: float = 30.0) -> str:
        """Before login: client1's traffic goes to the portal of the CPE it is at.

        With the controller, the service's steering intent does it; without, the
        client's gateway becomes the portal (as the portal's DHCP would hand out)."""
        if not self.sdn:
            self.route_client_via(self.portals["cpe1"])
            return f"client1's gateway is the portal {self.portals['cpe1']} (no controller)"
        deadline = time.monotonic() + timeout
        while True:
            it = self.intent(f"firewall-{USER}")
            if (
                it
                and it["state"] == "active"
                and it["intent"]["chain"] != [self.fw_id]
                and self.in_sync()
            ):
                return f"steering intent firewall-{USER} through {it['intent']['chain'][0]}"
            if time.monotonic() > deadline:
                raise DemoFailed(f"no active captive steering for {USER} after {timeout} s: {it}")
            time.sleep(0.1)

    def steer(self, timeout: float = 30.0) -> str:
        """After login: client1's traffic to server1 goes through its firewall."""
        if not self.sdn:
            self.route_client_via(self.fw_ip)
            self.tb.exec(
                "cpe1", ["ip", "route", "replace", f"{self.client_ip}/32", "via", self.fw_ip]
            )
            return "routes (no controller): client1 and cpe1 route via the firewall"
        deadline = time.monotonic() + timeout
        while True:
            it = self.intent(f"firewall-{USER}")
            if (
                it
                and it["state"] == "active"
                and it["intent"]["chain"] == [self.fw_id]
                and self.in_sync()
            ):
                return f"steering intent firewall-{USER} through {self.fw_id} ({it['flows']} flows)"
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"steering through {self.fw_id} not active after {timeout} s: {it}"
                )
            time.sleep(0.05)

    def steering_moved(self) -> str:
        """How the steering reached the migrated firewall: at its cut-over (the
        controller acting on the copy's gratuitous ARP) or with the view."""
        for e in reversed(self.api("GET", "/events?tail=500")):
            d = e["data"]
            if e["kind"] == "steering_moved" and d.get("instance") == self.fw_id:
                return (
                    f"moved at the cut-over to {d['node']}/{d['ofport']}, "
                    f"{d['install_ms']:.1f} ms after the copy announced itself"
                )
        return "moved with the view (the copy's announcement came after it)"

    def in_sync(self) -> bool:
        """The controller reported every switch holding the current intents' flows."""
        return bool(self.api("GET", "/sdn/status")["in_sync"])

    def fw_rx(self) -> int:
        """Packets received by the firewall's interface (proves traffic crosses it)."""
        return rx_packets(f"{self.tb.prefix}-{self.fw_node}-{self.fw_id}")

    def connect_through(self, port: int, timeout: float = 15.0) -> socket.socket:
        """A TCP connection client1 -> server1:port; retried (bounded) while the
        controller installs a new intent's flows."""
        deadline = time.monotonic() + timeout
        while True:
            c = tcp_connect(self.client_ns, self.server_ip, port, timeout=1.0)
            if c is not None:
                c.settimeout(10.0)  # a move may stall it while flows change
                return c
            if time.monotonic() > deadline:
                raise DemoFailed(f"TCP {port} to server1 does not work after {timeout} s")

    def move_client(self, to: str) -> None:
        """Move client1's access port to the bridge of node `to` (one OVSDB transaction)."""
        port = str(self.tb.state.hosts["client1"]["port"])
        b = Vsctl(str(self.tb.ovs_db)).batch()
        b.del_port(port)  # from whichever bridge has it
        b.add_port(self.tb.bridge_of(to), port, peer="host:client1")
        b.commit()

    def wait_migrated(self, node: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            inst: dict[str, Any] = self.api("GET", f"/instances/{self.fw_id}")
            migs = [m for m in inst["migrations"] if m["target"] == node]
            if migs and migs[-1]["phase"] == MigrationPhase.DONE and inst["state"] == "running":
                self.fw_node = node
                last: dict[str, Any] = migs[-1]
                return last
            if migs and migs[-1]["phase"] == MigrationPhase.FAILED:
                raise DemoFailed(f"migration failed: {migs[-1]['reason']}")
            if time.monotonic() > deadline:
                raise DemoFailed(f"firewall not migrated to {node} after {timeout} s")
            time.sleep(0.02)

    def blocked(self, port: int = BLOCKED_PORT) -> bool:
        c = tcp_connect(self.client_ns, self.server_ip, port, timeout=1.5)
        if c is None:
            return True
        c.close()
        return False


def check(tb: Testbed, say: Say) -> None:
    sc = Scenario(tb, say)
    try:
        _check(sc, say)
    finally:
        sc.close()


def _check(sc: Scenario, say: Say) -> None:
    api = sc.api
    sc.setup()
    if sc.firewall_instances():
        raise DemoFailed("a firewall runs before anyone logged in")
    say("(a) no firewall runs while client1 is not logged in")

    # Before login client1's web traffic goes to the portal of its CPE: the login page.
    say(f"before login: {sc.wait_captive()}")
    deadline = time.monotonic() + 15
    while True:  # bounded: the controller may still be installing the intent's flows
        r = sc.tb.exec(
            "client1",
            ["curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             f"http://{sc.server_ip}/"],
            check=False,
        )  # fmt: skip
        if r.stdout.startswith("302 ") and sc.portals["cpe1"] in r.stdout:
            break
        if time.monotonic() > deadline:
            raise DemoFailed(f"unauthenticated web traffic not redirected: {r.stdout!r}")
    say(f"client1's web request to server1 is redirected to the portal: {r.stdout.split()[1]}")
    captive = json.loads(
        sc.tb.exec(
            "client1", ["curl", "-s", "-m", "5", f"http://{sc.portals['cpe1']}/api/captive"]
        ).stdout
    )
    if captive.get("captive") is not True:
        raise DemoFailed(f"RFC 8908 API says {captive}")

    sc.login("cpe1")
    inst = sc.wait_firewall_running("cpe1")
    say(f"(b) login at cpe1 accepted; firewall {inst['id']} runs at cpe1 ({sc.fw_ip})")
    say(f"client1's traffic is steered: {sc.steer()}")
    conn = sc.connect_through(ALLOWED_PORT)
    rx0 = sc.fw_rx()
    if not echo(conn, b"opened at cpe1"):
        raise DemoFailed(f"allowed TCP {ALLOWED_PORT} does not work through the firewall")
    crossed = sc.fw_rx() - rx0
    if crossed < 2:  # the echo's data segment and the server's reply, at least
        raise DemoFailed(f"the allowed connection does not cross the firewall ({crossed} packets)")
    if not sc.blocked():
        raise DemoFailed(f"TCP {BLOCKED_PORT} is not blocked at cpe1")
    say(
        f"at cpe1: TCP {ALLOWED_PORT} connection open through the firewall ({crossed} packets "
        f"crossed it for one echo), TCP {BLOCKED_PORT} blocked"
    )

    sc.move_client("cpe2")
    sc.login("cpe2")
    mig = sc.wait_migrated("cpe2")
    say(
        f"(c) login at cpe2: firewall migrated cpe1 -> cpe2 with its state "
        f"(downtime {mig['downtime_ms']:.1f} ms, {mig['state_bytes']} bytes)"
    )
    if sc.sdn:
        say(f"steering follows the firewall: {sc.steer()}; {sc.steering_moved()}")
    if not echo(conn, b"still here after the move"):
        raise DemoFailed("the TCP connection opened at cpe1 did not survive the move")
    rx0 = sc.fw_rx()
    if not echo(conn, b"and through the firewall at cpe2"):
        raise DemoFailed("the TCP connection opened at cpe1 stopped after the move")
    crossed = sc.fw_rx() - rx0
    conn.close()
    if crossed < 2:
        raise DemoFailed("after the move the connection does not cross the firewall at cpe2")
    say(
        "the TCP connection opened at cpe1 carries on through the firewall at cpe2 "
        f"({crossed} packets for one echo)"
    )
    if not sc.blocked():
        raise DemoFailed(f"TCP {BLOCKED_PORT} is not blocked after the move")
    say(f"TCP {BLOCKED_PORT} is still blocked at cpe2")
    t = api("GET", "/firewall/tables")
    fn = next(f for f in t["functions"] if f["user"] == USER)
    user = next(u for u in t["users"] if u["name"] == USER)
    if fn["node"] != "cpe2" or user["access_node"] != "cpe2":
        raise DemoFailed(f"tables not true after the move: {fn} {user}")
    deadline = time.monotonic() + 5
    while True:
        portals = {
            f["node"]: f["users"]
            for f in api("GET", "/firewall/functions")
            if f["kind"] == "portal" and f["active"]
        }
        if portals == {"cpe1": 0, "cpe2": 1}:
            break
        if time.monotonic() > deadline:
            raise DemoFailed(f"Table II portals: {portals}, expected cpe1: 0, cpe2: 1 users")
        time.sleep(0.1)
    say("tables: user at cpe2, firewall active at cpe2, the cpe2 portal has 1 user")

    t0 = time.monotonic()
    deadline = t0 + IDLE_S + 30
    while True:
        t = api("GET", "/firewall/tables")
        user = next(u for u in t["users"] if u["name"] == USER)
        if user["status"] == "offline":
            break
        if time.monotonic() > deadline:
            raise DemoFailed(f"no idle release after {IDLE_S + 30} s: {user}")
        time.sleep(0.2)
    fn = next(f for f in t["functions"] if f["user"] == USER)
    if fn["active"]:
        raise DemoFailed(f"released but Table II says active: {fn}")
    api.wait_state(sc.fw_id, "gone")
    say(
        f"(d) idle for {IDLE_S} s: firewall released "
        f"({time.monotonic() - t0:.1f} s after the last traffic)"
    )
    # Released is captive again, never open: client1's traffic goes to a portal.
    say(f"after the release: {sc.wait_captive()}")
    if not sc.blocked(ALLOWED_PORT):
        raise DemoFailed(f"after the release TCP {ALLOWED_PORT} still reaches server1")
    say(f"after the release TCP {ALLOWED_PORT} no longer reaches server1")
    kinds = [e["kind"] for e in api("GET", "/events?limit=500")]
    for k in (
        "UserLoggedIn",
        "FirewallCreated",
        "FirewallStarted",
        "FirewallMigrationStarted",
        "FirewallMigrated",
        "UserWentIdle",
        "FirewallReleased",
    ):
        if k not in kinds:
            raise DemoFailed(f"event {k} missing from the timeline")
    say("timeline: UserLoggedIn, FirewallCreated/Started, FirewallMigrated, FirewallReleased")


def show(tb: Testbed, say: Say) -> None:
    sc = Scenario(tb, say)
    sc.setup(idle_s=300)
    say(f"before login: {sc.wait_captive()}")
    say(
        f"client1's web traffic goes to the portal at cpe1 ({sc.portals['cpe1']}); log in as "
        f"{USER} / {PASSWORD}: ip netns exec {sc.client_ns} curl "
        f"--data 'username={USER}&password={PASSWORD}' http://{sc.portals['cpe1']}/login"
    )
    say("tables: netfate firewall tables")
