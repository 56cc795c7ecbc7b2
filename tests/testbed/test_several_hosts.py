"""Several machines (issue 12, section 3): the orchestrator and two agents on hosts of
their own, joined only by routed links, over TLS with their own credentials; a
stateful function migrates from one agent to the other with its state.

Each "machine" is a namespace of the run with one veth to a router namespace:

    orch  10.201.1.2 --+
    hostA 10.201.2.2 --+-- router (.1 on each link, forwarding)
    hostB 10.201.3.2 --+

Nothing else joins them (the root namespace gets no route there; this test talks to
the orchestrator from the orchestrator's own namespace, as its operator would on its
console). The orchestrator serves HTTPS only (--tls-cert/--tls-key, a certificate
for 10.201.1.2 from a CA made here); each agent checks it with --ca, signs in with
its own node's token, listens for migrations on 0.0.0.0 and --advertises its
routable address. Agents run inside their host's namespace, so a migration's state
can only go from hostA to hostB through the router.

The edge network the function serves (the demo's nodes, hosts and bridges) is the
testbed's, built without its control plane (`control=False`): what is under test is
the control plane between machines. A laptop's counter (a function with state)
runs on cpe1 (agent on hostA), counts twice, migrates to pe1 (agent on hostB), and
counts on from where it was; the copy on cpe1 is gone.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netfate.demo.probe import CounterProbe, ProbeError
from netfate.host import links, netns, nft
from netfate.host import proc as procs
from netfate.host.private import read_private, write_private
from netfate.testbed.builder import Testbed
from netfate.vnf.pki import CertificateAuthority
from testbed_procs import copies, serving_at, until, up_testbed

ORCH_IP = "10.201.1.2"
PORT = 8443
HOSTS = {"ho": 1, "ha": 2, "hb": 3}  # namespace suffix -> link number (10.201.N.0/24)
AGENT_HOST = {"cpe1": "ha", "pe1": "hb"}
SOURCE, TARGET = "cpe1", "pe1"


def addr(host: str) -> str:
    return f"10.201.{HOSTS[host]}.2"


class Machines:
    """The run's testbed plus the three machines, their processes and credentials."""

    def __init__(self, tb: Testbed, work: Path) -> None:
        self.tb = tb
        self.work = work
        self.url = f"https://{ORCH_IP}:{PORT}"
        self.ca = work / "pki" / "ca.pem"
        self.token = ""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._verify: ssl.SSLContext | None = None

    @property
    def verify(self) -> ssl.SSLContext:
        if self._verify is None:
            self._verify = ssl.create_default_context(cafile=str(self.ca))
        return self._verify

    def ns(self, host: str) -> str:
        return f"{self.tb.prefix}-{host}"

    def wire(self) -> None:
        """Namespaces, links to the router, addresses and routes (none in the root)."""
        rt = self.ns("rt")
        for name in [rt, *(self.ns(h) for h in HOSTS)]:
            netns.ensure(name)
            self.tb.state.namespaces.append(name)
        self.tb.state.save()
        links.sysctl(rt, "net.ipv4.ip_forward", 1)
        for host, n in HOSTS.items():
            ns, mine, theirs = self.ns(host), f"eth{n}", f"r{n}"
            links.veth_pair(theirs, rt, mine, ns)
            links.add_address(rt, theirs, f"10.201.{n}.1/24")
            links.add_address(ns, mine, f"{addr(host)}/24")
            for side, ifname in ((rt, theirs), (ns, mine), (ns, "lo")):
                links.set_up(side, ifname)
            links.add_route(ns, "default", f"10.201.{n}.1")
        # What the router forwards between the two agents' machines, counted: only a
        # migration's channel goes that way (each agent otherwise talks to the
        # orchestrator only).
        table = {"family": "ip", "table": "machines"}
        chain = {**table, "name": "fwd", "type": "filter", "hook": "forward", "prio": 0,
                 "policy": "accept"}  # fmt: skip
        rule = {**table, "chain": "fwd", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"set": [addr("ha"), addr("hb")]}}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": {"set": [addr("ha"), addr("hb")]}}},
            {"counter": {"packets": 0, "bytes": 0}},
        ]}  # fmt: skip
        nft.apply(nft.document([*nft.fresh_table("ip", "machines"), {"add": {"chain": chain}},
                                {"add": {"rule": rule}}]), ns=rt)  # fmt: skip

    def between_agents(self) -> int:
        """Bytes the router forwarded between hostA and hostB."""
        out = netns.run_in(self.ns("rt"), ["nft", "-j", "list", "table", "ip", "machines"])
        for item in json.loads(out.stdout)["nftables"]:
            for e in item.get("rule", {}).get("expr", []):
                if "counter" in e:
                    return int(e["counter"]["bytes"])
        raise AssertionError(f"no counter in {out.stdout}")

    def spawn(self, host: str, role: str, argv: list[str]) -> None:
        log = self.work / f"{role}.log"
        with open(log, "ab") as f:
            # nsenter, not `ip netns exec`: that one also gives the process a mount
            # namespace of its own, where the namespaces an agent makes for its functions
            # would be mounted out of everyone else's sight. A machine's agent shares
            # its machine's mounts; only the network is the machine's own.
            p = subprocess.Popen(
                ["nsenter", f"--net={netns.NETNS_DIR / self.ns(host)}", "--",
                 sys.executable, "-m", "netfate", *argv],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.procs[role] = p
        self.tb.state.add_process(procs.ref(p.pid, role=role))

    def http(self, host: str, method: str, path: str, body: Any = None,
             token: str | None = None) -> httpx.Response:  # fmt: skip
        """A request from `host`'s namespace (its own routes), checking the certificate."""
        headers = {"authorization": f"Bearer {token or self.token}"}

        def call() -> httpx.Response:
            return httpx.request(method, f"{self.url}/api/v1{path}", json=body, timeout=30.0,
                                 headers=headers, verify=self.verify)  # fmt: skip

        return netns.in_netns(self.ns(host), call)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http("ho", method, path, body)
        assert r.status_code < 400, f"{method} {path}: {r.status_code} {r.text[:300]}"
        return r.json()

    def start(self) -> None:
        pki = CertificateAuthority(self.work / "pki", name="several machines CA")
        orch = pki.issue("orch", usage="server", names=(ORCH_IP,))
        secrets = self.work / "secrets"
        st = self.tb.state
        self.spawn("ho", "orchestrator", [
            "orchestrator", "--listen", f"{ORCH_IP}:{PORT}",
            "--tls-cert", str(orch.cert), "--tls-key", str(orch.key),
            "--database-url", f"sqlite:///{self.work / 'orchestrator.db'}",
            "--topology", str(st.dir / "topology.yaml"),
            "--operator-file", str(secrets / "operator.json"),
        ])  # fmt: skip

        def signed_in() -> bool:
            text = read_private(secrets / "operator.json")
            if text is None:
                return False
            try:
                r = self.http("ho", "POST", "/auth/token", json.loads(text), token="-")
            except httpx.HTTPError:
                return False
            self.token = str(r.json()["token"]) if r.status_code == 200 else ""
            return bool(self.token)

        until("the orchestrator answers over https", signed_in, timeout=60.0)
        for node, host in AGENT_HOST.items():
            issued = self.api("POST", "/accounts/agents", {"node": node})["token"]
            token_file = write_private(secrets / f"agent-{node}.token", issued)
            self.spawn(host, f"agent:{node}", [
                "agent", "--node", node, "--orchestrator", self.url, "--ca", str(self.ca),
                "--token-file", str(token_file),
                "--listen", "0.0.0.0:7000", "--advertise", addr(host),
                "--netns", self.tb.netns_of(node), "--ovs-db", str(st.ovs_db),
                "--ovs-netns", self.tb.names.sw, "--bridge", self.tb.bridge_of(node),
                "--state-dir", str(st.dir / "agents" / node), "--prefix", st.prefix,
            ])  # fmt: skip
        until("both agents up", lambda: all(
            n["status"] == "up" for n in self.api("GET", "/nodes") if n["name"] in AGENT_HOST
        ), timeout=90.0)  # fmt: skip

    def stop(self) -> None:
        for role, p in self.procs.items():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            print(f"--- {role}\n{(self.work / f'{role}.log').read_text()[-3000:]}")


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machines]:
    with up_testbed("demo", control=False) as tb:
        m = Machines(tb, tmp_path_factory.mktemp("machines"))
        try:
            m.wire()
            m.start()
            yield m
        finally:
            m.stop()


def test_the_machines_reach_each_other_only_by_their_routes(machines: Machines) -> None:
    nodes = {n["name"]: n for n in machines.api("GET", "/nodes")}
    assert nodes[SOURCE]["endpoint"] == f"{addr('ha')}:7000"
    assert nodes[TARGET]["endpoint"] == f"{addr('hb')}:7000"
    # Over the router from hostB, with its own routes; refused without the token.
    assert machines.http("hb", "GET", "/nodes", token="not-a-token").status_code == 401
    # Plain HTTP is not served on the orchestrator's address.
    with pytest.raises(httpx.HTTPError):
        netns.in_netns(machines.ns("hb"),
                       lambda: httpx.get(f"http://{ORCH_IP}:{PORT}/api/v1/health", timeout=5.0)
                       .raise_for_status())  # fmt: skip
    # The root namespace has no route into these addresses.
    root = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert "10.201." not in root, root
    # Each agent runs on its own machine (namespace), the orchestrator on a third.
    for role, host in (("orchestrator", "ho"), *((f"agent:{n}", h) for n, h in AGENT_HOST.items())):
        assert _netns_of(machines.procs[role].pid) == _netns_of_name(machines.ns(host)), role


def _netns_of(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _netns_of_name(name: str) -> int:
    return os.stat(netns.NETNS_DIR / name).st_ino


def test_a_counter_migrates_between_the_machines_with_its_state(machines: Machines) -> None:
    tb = machines.tb
    inst = machines.api("POST", "/instances", {"descriptor": "counter", "node": SOURCE})
    iid = str(inst["id"])
    until("counter running", lambda: machines.api("GET", f"/instances/{iid}")["state"]
          == "running", timeout=60.0)  # fmt: skip
    ip = str(machines.api("GET", f"/instances/{iid}")["ip"]).split("/")[0]
    probe = CounterProbe(tb.netns_of("laptop1"), ip)
    until("the counter answers", lambda: _ask(probe) == 1, timeout=30.0)
    assert _ask(probe) == 2
    assert serving_at(tb, iid) == SOURCE, copies(tb, iid)
    assert machines.between_agents() == 0  # the agents have had nothing to say to each other
    mid = machines.api("POST", f"/instances/{iid}/migrate", {"node": TARGET})["id"]

    def ended() -> dict[str, Any] | None:
        inst = machines.api("GET", f"/instances/{iid}")
        m = next(m for m in inst["migrations"] if m["id"] == mid)
        return m if m["phase"] in ("done", "failed") else None

    m = until("migration ended", ended, timeout=90.0)
    assert m["phase"] == "done", m
    until(f"one serving copy at {TARGET}", lambda: serving_at(tb, iid) == TARGET, timeout=60.0)
    assert machines.api("GET", f"/instances/{iid}")["node"] == TARGET
    assert _ask(probe) == 3, "the count moved with the function"
    # The migration went from machine to machine, through the router.
    assert machines.between_agents() > 0


def _ask(probe: CounterProbe) -> int | None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            return int(probe.ask().count)
        except (ProbeError, OSError):  # not answering yet: ask again
            time.sleep(0.2)
    return None
