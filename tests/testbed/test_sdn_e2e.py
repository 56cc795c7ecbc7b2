"""End to end: the real testbed (bridges in secure mode), orchestrator, agents, controller, CLI.

The testbed routes between LANs in the node namespaces over one L2 fabric of
bridges, so with a controller nothing passes until intents say so. The fabric
for two homes is expressed with connectivity intents (the `netfate flow` CLI):

    host:laptopN  <-> subnet:0.0.0.0/0@cpeN          a host and its gateway
    subnet:<transit a>/32@a <-> subnet:<transit b>/32@b   node namespaces, pairwise
    subnet:<LAN 1>@cpe1 <-> subnet:<LAN 2>@cpe2        routed traffic between the LANs

Then a steering intent sends laptop1's traffic to laptop2 through a VNF
instance on pe1, proven by the instance's packet counter; deleting it brings
the direct path back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from itertools import combinations
from typing import Any

import httpx
import pytest

from browser import chromium
from netfate.model.topology import Topology
from sdn_rig import TWO_HOMES, ControllerProcess, wait_until

TOPO = TWO_HOMES
PORT = 6653


class E2E:
    def __init__(self, tb: Any, ctl: ControllerProcess, topo: Topology) -> None:
        self.tb = tb
        self.ctl = ctl
        self.topo = topo
        self.url: str = tb.state.api_url

    def cli(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "netfate", *args, "--orchestrator", self.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"netfate {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"authorization": f"Bearer {self.tb.api_token}"}
        r = httpx.request(method, f"{self.url}/api/v1{path}", timeout=10, headers=headers, **kw)
        r.raise_for_status()
        return r.json()

    def ping(self, src: str, dst: str, count: int = 1) -> bool:
        ip = str(self.topo.hosts[dst].ip)
        r = self.tb.exec(
            src, ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", ip], check=False
        )
        return bool(r.returncode == 0)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    import secrets

    from netfate.testbed.builder import Testbed

    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "topo.yaml").write_text(TOPO)
    topo = Topology.load(tmp / "topo.yaml")
    tb = Testbed.up(
        tmp / "topo.yaml",
        prefix="nft" + secrets.token_hex(2)[:3],
        controller=f"tcp:127.0.0.1:{PORT}",
    )
    ctl = None
    try:
        issued = httpx.post(f"{tb.state.api_url}/api/v1/accounts/controllers", json={},
                            headers={"authorization": f"Bearer {tb.api_token}"})  # fmt: skip
        issued.raise_for_status()
        ctl = ControllerProcess(tb.state.api_url, PORT, tb.names.sw, tmp / "ctl.log",
                                token=issued.json()["token"])  # fmt: skip
        yield E2E(tb, ctl, topo)
    finally:
        if ctl is not None:
            print(ctl.output()[-6000:])
            ctl.stop()
        tb.down()


def test_secure_mode_then_fabric_intents_through_the_cli(e2e: E2E) -> None:
    for node in ("cpe1", "cpe2", "pe1"):
        wait_until(lambda n=node: e2e.api("GET", f"/nodes/{n}/flows")["at"], what=f"{node} table")
    assert not e2e.ping("laptop1", "laptop2")
    # The switch saw laptop1 (a packet-in on its access port): a host_seen event.
    events = wait_until(
        lambda: [
            e
            for e in e2e.api("GET", "/events?limit=500")
            if e["kind"] == "host_seen" and e["data"].get("known_as") == "laptop1"
        ],
        what="host_seen for laptop1",
    )
    assert events[0]["data"]["node"] == "cpe1"

    t = {n: str(spec.transit_ip) for n, spec in e2e.topo.nodes.items()}
    e2e.cli("flow", "add", "connectivity", "host:laptop1", "subnet:0.0.0.0/0@cpe1", "--id", "gw1")
    e2e.cli("flow", "add", "connectivity", "host:laptop2", "subnet:0.0.0.0/0@cpe2", "--id", "gw2")
    for a, b in combinations(sorted(t), 2):
        e2e.cli(
            "flow",
            "add",
            "connectivity",
            f"subnet:{t[a]}/32@{a}",
            f"subnet:{t[b]}/32@{b}",
            "--id",
            f"transit-{a}-{b}",
        )
    out = e2e.cli(
        "flow",
        "add",
        "connectivity",
        "subnet:192.168.1.0/24@cpe1",
        "subnet:192.168.2.0/24@cpe2",
        "--id",
        "lan12",
    )
    assert "lan12: active" in out
    wait_until(lambda: e2e.ping("laptop1", "laptop2"), timeout=30, what="laptop1 -> laptop2")
    assert e2e.ping("laptop2", "laptop1", count=3)
    listing = e2e.cli("flow", "list")
    assert listing.count("active") == 6
    # Counters, as the controller last read them, through the API and the CLI.
    wait_until(
        lambda: any(
            f["packets"] > 0 and f["cookie"] != "0x4e46000000000000"
            for f in e2e.api("GET", "/nodes/cpe2/flows")["flows"]
        ),
        what="counted packets on cpe2",
    )
    shown = e2e.cli("flow", "show", "cpe2")
    assert "prio=100" in shown and "pkts=" in shown


def test_fabric_completes_the_base_connectivity(e2e: E2E) -> None:
    # The hand-made intents above overlap part of the fabric: those are refused
    # with the reason, the rest (pe1's LAN) is added.
    out = e2e.cli("flow", "fabric")
    assert "refused fabric-lan-cpe1-0-cpe2-0" in out and "already connects" in out
    ids = {i["intent"]["id"] for i in e2e.api("GET", "/intents")}
    assert {"fabric-lan-cpe1-0-pe1-0", "fabric-lan-cpe2-0-pe1-0"} <= ids
    pe1_gw = str(e2e.topo.nodes["pe1"].lans[0].network_address + 1)
    wait_until(
        lambda: (
            e2e.tb.exec("laptop1", ["ping", "-c", "1", "-W", "1", pe1_gw], check=False).returncode
            == 0
        ),
        what="laptop1 -> pe1's LAN gateway",
    )


def test_bad_cli_input_is_refused_and_installs_nothing(e2e: E2E) -> None:
    before = e2e.api("GET", "/intents")
    out = e2e.cli("flow", "add", "connectivity", "host:laptop1", "host:ghost", check=False)
    assert "422" in out and "unknown host 'ghost'" in out
    out = e2e.cli(
        "flow", "add", "steering", "laptop1", "--chain", "nope", "--to", "host:laptop2", check=False
    )
    assert "unknown instance 'nope'" in out
    out = e2e.cli(
        "flow",
        "add",
        "connectivity",
        "subnet:192.168.2.0/24@cpe2",
        "subnet:192.168.1.0/24@cpe1",
        "--id",
        "again",
        check=False,
    )
    assert "409" in out and "already connects" in out
    assert e2e.api("GET", "/intents") == before


def test_steering_through_a_vnf_instance_and_back_to_direct(e2e: E2E) -> None:
    inst = e2e.api("POST", "/instances", json={"descriptor": "counter", "node": "pe1"})
    iid = inst["id"]
    wait_until(
        lambda: e2e.api("GET", f"/instances/{iid}")["state"] == "running",
        timeout=60,
        what="instance running",
    )
    ns = f"{e2e.tb.state.prefix}-pe1-{iid}"
    # The test plays the VNF's network configuration: a one-armed router.
    for key in (
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.send_redirects=0",
        "net.ipv4.conf.eth0.send_redirects=0",
    ):
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", key], check=True)

    def rx() -> int:
        out = subprocess.run(
            ["ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/statistics/rx_packets"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out)

    out = e2e.cli(
        "flow",
        "add",
        "steering",
        "laptop1",
        "--chain",
        iid,
        "--to",
        "host:laptop2",
        "--id",
        "via-vnf",
        "--json",
    )
    # Pending until the agent has reported the instance's port, then active.
    assert json.loads(out)["state"] in ("active", "pending")
    wait_until(
        lambda: e2e.api("GET", "/intents/via-vnf")["state"] == "active",
        what="steering intent active",
    )
    wait_until(
        lambda: any(
            f["cookie"] == json.loads(out)["cookie"]
            for f in e2e.api("GET", "/nodes/pe1/flows")["flows"]
        ),
        what="steering flows on pe1",
    )
    wait_until(lambda: e2e.ping("laptop1", "laptop2"), what="ping through the instance")
    before = rx()
    assert e2e.ping("laptop1", "laptop2", count=5)
    assert rx() - before >= 10  # requests and replies crossed the instance
    e2e.cli("flow", "delete", "via-vnf")
    wait_until(
        lambda: (
            not any(
                f["cookie"] == json.loads(out)["cookie"]
                for f in e2e.api("GET", "/nodes/pe1/flows")["flows"]
            )
        ),
        what="steering flows gone",
    )
    wait_until(lambda: e2e.ping("laptop1", "laptop2"), what="direct path again")
    before = rx()
    assert e2e.ping("laptop1", "laptop2", count=5)
    assert rx() - before < 5


def test_dashboard_shows_the_flow_tables_with_counters(e2e: E2E) -> None:
    """The dashboard's flow-table panel, in headless Chromium (Debian's, never a
    downloaded one), lists the switch's flows with their counters."""
    import json

    from netfate.host.private import read_private

    operator = json.loads(read_private(e2e.tb.state.secrets / "operator.json") or "{}")
    with chromium() as browser:
        page = browser.new_page()
        page.goto(e2e.url + "/")  # behind sign-in: the form, then the dashboard
        page.fill("#signin-name", operator["name"])
        page.fill("#signin-password", operator["password"])
        page.click("#signin-submit")
        page.wait_for_selector("table.flows tr td", timeout=30_000)
        header = page.locator("table.flows th").all_inner_texts()
        assert header == ["prio", "cookie", "match", "actions", "packets", "bytes"]
        rows = page.locator("table.flows tr").count()
        assert rows > 3, rows
        assert page.get_by_text("0x4e46").count() > 0  # netfate's cookie prefix
