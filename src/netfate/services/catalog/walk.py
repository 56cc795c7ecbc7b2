"""A user walking between homes, on the testbed: the catalog demo's third act.

The catalog learns where a user is from their logins (position.py): the firewall
service's RADIUS server, on an Access-Accept from a CPE's captive portal, records
``UserLoggedIn`` with the CPE. Here the same machinery the firewall demo uses
runs for the catalog's users: a RADIUS listener in the provider edge's namespace,
a captive portal instance at each CPE (its NAS-Identifier is the CPE), and each
user registered with the firewall service without a personal firewall
(``functions: []``): a login is only a login.

`Portals.login` posts the portal's login form from a host's namespace (curl, as a
user's browser would); `move` takes a host's access port to another CPE's bridge
(one OVSDB transaction), the laptop keeping its address (the testbed's bridges are
one L2 network).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from netfate.demo.platform import Api, DemoFailed
from netfate.host.ovs import Vsctl
from netfate.testbed.builder import Testbed

RADIUS_NODE = "pe1"
IDLE_S = 86400
"""A login is not released for idleness while the demo runs (no firewall reports
the user's packets here)."""


def password_of(user: str) -> str:
    return f"{user}-walks-in-fog"


class Portals:
    """RADIUS at `RADIUS_NODE`'s LAN gateway, a captive portal at each of `nodes`, and
    `users` registered for login only."""

    def __init__(self, tb: Testbed, api: Api, nodes: Iterable[str], users: Iterable[str]) -> None:
        self.tb, self.api = tb, api
        secret = secrets.token_hex(12)
        radius = str(tb.topology.nodes[RADIUS_NODE].gateways[0])
        for port in (1812, 1813):
            api("POST", "/firewall/radius/listeners",
                {"address": radius, "port": port, "netns": tb.netns_of(RADIUS_NODE)})  # fmt: skip
        api("POST", "/firewall/radius/clients",
            {"address": "192.168.0.0/16", "secret": secret, "name": "cpe LANs"})  # fmt: skip
        for user in users:
            api("POST", "/firewall/users", {"name": user, "password": password_of(user),
                                            "functions": [], "idle_timeout": IDLE_S})  # fmt: skip
        self.ip: dict[str, str] = {}
        started = []
        for node in nodes:
            inst = api("POST", "/instances", {
                "descriptor": "captive-portal", "node": node, "name": f"portal-{node}",
                "config": {"node": node, "port": 80, "interim": 3600.0, "radius": {
                    "server": f"{radius}:1812", "acct_server": f"{radius}:1813",
                    "secret": secret}},
            })  # fmt: skip
            self.ip[node] = inst["ip"].split("/")[0]
            started.append(inst["id"])
        for iid in started:
            api.wait_state(iid, "running", timeout=60)

    def login(self, host: str, node: str, user: str) -> None:
        """`user` signs in at `node`'s portal from `host`'s namespace; DemoFailed unless
        the portal says the login was accepted (it answers after the Access-Accept)."""
        r = self.tb.exec(
            host,
            ["curl", "-s", "-m", "10", "--data-urlencode", f"username={user}",
             "--data-urlencode", f"password={password_of(user)}",
             f"http://{self.ip[node]}/login"],
            check=False,
        )  # fmt: skip
        if "Logged in as" not in r.stdout:
            said = f"{r.stdout[-300:]} {r.stderr[-200:]}"
            raise DemoFailed(f"{user}'s login at {node} failed: {said}")


def move(tb: Testbed, host: str, node: str) -> None:
    """Take `host`'s access port to `node`'s bridge (from whichever bridge has it)."""
    if tb.ovs_db is None:
        raise DemoFailed("the testbed runs without its switch database")
    port = str(tb.state.hosts[host]["port"])
    b = Vsctl(tb.ovs_db).batch()
    b.del_port(port)
    b.add_port(tb.bridge_of(node), port, peer=f"host:{host}")
    b.commit()
