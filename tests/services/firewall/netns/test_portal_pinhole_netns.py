"""The captive portal's pinholes in namespaces (gate.py): a captive client let
through to one address's TCP ports (the streaming service's viewer, signed in at its
front-end, to its edge streamer on a neighbour PE) reaches exactly those; its other
traffic stays captive and another client gets nothing of it.

The portal rig of test_portal_netns.py (portal_rig.PortalNet) with a second client
NET.0.11: the web host NET.1.20 stands for the streamer, with servers on 8080 (the
pinhole's port), 8081 (not) and 80.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.host import netns
from netns_lan import sh
from portal_rig import PortalNet
from waiting import until

NET = "10.74"
STREAMER = f"{NET}.1.20"


@pytest.fixture
def net(run_prefix: str, tmp_path: Path) -> Iterator[PortalNet]:
    rig = PortalNet(run_prefix, tmp_path, NET)
    rig.hosts.append(("cl2", [f"{NET}.0.11/24"], [("default", f"{NET}.0.1")]))
    with rig.built((8080, 8081, 80)) as n:
        yield n


def test_a_pinhole_lets_one_client_reach_one_address_s_ports_only(net: PortalNet) -> None:
    cfg = net.portal_config("pinhole-secret")
    cfg["pinholes"] = [{"client": f"{NET}.0.10", "to": STREAMER, "ports": [8080]}]
    net.start_portal(cfg)
    url = f"http://{STREAMER}:8080/hello.txt"
    # The pinholed client reaches the streamer's port, with no login.
    assert until(lambda: "hello from the web" in net.curl(url).stdout), net.portal_log()
    # Another port of the same address: nothing passes.
    assert net.curl("-m", "2", f"http://{STREAMER}:8081/hello.txt").stdout == ""
    # Its web elsewhere, port 80 of the same address included: still the portal's.
    redirect = net.curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                        f"http://{STREAMER}/hello.txt").stdout  # fmt: skip
    assert redirect == f"302 http://{NET}.0.1/login", redirect
    # Another client, the same port: nothing passes.
    other = sh(net.ns("cl2"), "curl", "-s", "-m", "2", url, check=False)
    assert other.stdout == "" and other.returncode != 0, other
    assert net.stats()["logins"] == 0


def test_without_pinholes_the_client_does_not_reach_the_port(net: PortalNet) -> None:
    net.start_portal(net.portal_config("pinhole-secret"))
    # The gate is up (web is redirected), and the port is not reached.
    assert until(lambda: net.curl("-o", "/dev/null", "-w", "%{http_code}",
                                  f"http://{STREAMER}/").stdout == "302")  # fmt: skip
    assert net.curl("-m", "2", f"http://{STREAMER}:8080/hello.txt").stdout == ""


def test_a_pinhole_that_is_no_address_is_refused(net: PortalNet) -> None:
    cfg = net.portal_config("pinhole-secret")
    cfg["pinholes"] = [{"client": "a viewer", "to": STREAMER, "ports": [8080]}]
    with pytest.raises(AssertionError, match="pinholes: 'a viewer' is not an IPv4 address"):
        net.start_portal(cfg)


ECHO = """
import socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((%r, 8082))
srv.listen(4)
while True:
    c, _ = srv.accept()
    while data := c.recv(100):
        c.sendall(data)
    c.close()
"""
TALK = """
import socket, sys
s = socket.create_connection((%r, 8082), timeout=3)
for line in sys.stdin:
    s.sendall(line.encode())
    try:
        print(s.recv(100).decode().strip() or "CLOSED", flush=True)
    except OSError:
        print("NO ANSWER", flush=True)
"""


def test_a_removed_pinhole_ends_the_flows_established_through_it(net: PortalNet) -> None:
    """As the agent applies a new configuration (export, stop handing over, start,
    import): a pinhole kept keeps its client's open connection; one removed (its
    viewer left) ends it, although the gate accepts established flows."""
    net.procs.append(netns.popen_in(net.ns("web"), [sys.executable, "-c", ECHO % STREAMER]))
    hole = {"client": f"{NET}.0.10", "to": STREAMER, "ports": [8082]}
    cfg = {**net.portal_config("pinhole-secret"), "pinholes": [hole]}
    net.start_portal(cfg)
    portal = [net.procs[-1]]
    talk = netns.popen_in(
        net.ns("cli"),
        [sys.executable, "-c", TALK % STREAMER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    net.procs.append(talk)
    assert talk.stdin is not None and talk.stdout is not None

    def say(word: str) -> str:
        assert talk.stdin is not None and talk.stdout is not None
        talk.stdin.write(word + "\n")
        talk.stdin.flush()
        return talk.stdout.readline().strip()

    def restart(new: dict[str, Any]) -> None:
        state = net.call({"op": "export"})["state"]
        assert net.call({"op": "stop", "hand_over": True})["ok"]
        assert portal[0].wait(10) == 0
        net.start_portal(new)
        portal[0] = net.procs[-1]
        assert net.call({"op": "import", "state": state})["ok"]

    assert say("one") == "one"
    # another client's pinhole added, this one kept: the connection carries on
    other = {"client": f"{NET}.0.11", "to": STREAMER, "ports": [8082]}
    restart({**cfg, "pinholes": [hole, other]})
    assert say("two") == "two"
    # this one removed: its open connection ends with it
    restart({**cfg, "pinholes": [other]})
    assert say("three") == "NO ANSWER"


# The streamer's RTP: on each "burst N" line, one datagram "N:i" to each target, then
# "sent"; a receiver's answer (its RTCP, as it were) makes each flow established.
SENDER = """
import socket, sys
targets = [(a, int(p)) for a, p in (t.split(":") for t in sys.argv[1:])]
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in targets]
for line in sys.stdin:
    n = line.split()[1]
    for i in range(20):
        for s, t in zip(socks, targets):
            s.sendto(f"{n}:{i}".encode(), t)
    print("sent", flush=True)
"""
# A native client's RTP ports: each datagram's burst, one line per port in a file
# (port burst count), and an answer to its sender.
RECEIVER = """
import json, os, select, socket, sys
out, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
socks = {}
for p in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", p))
    socks[s] = p
got = {}
open(out, "w").write("{}")  # bound: ready
while True:
    ready, _, _ = select.select(list(socks), [], [])
    for s in ready:
        data, peer = s.recvfrom(100)
        key = f"{socks[s]} {data.decode().split(':')[0]}"
        got[key] = got.get(key, 0) + 1
        s.sendto(b"rr", peer)
        with open(out + ".tmp", "w") as f:
            json.dump(got, f)
        os.replace(out + ".tmp", out)
"""


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def test_an_rtp_pinhole_lets_exactly_one_client_port_in_and_changes_in_place(
    net: PortalNet, tmp_path: Path
) -> None:
    """The streamer's UDP to a native client's RTP (and RTCP) port, an `in` pinhole:
    added to and removed from the running portal (configure: applied in place, the
    portal's process and its dnsmasq the same), it lets exactly that flow in (not
    another port of the client, nor another client's same port); removed, the flow
    ends although the client answered (established). A kept pinhole (port 5008)
    marks each burst's arrival."""
    cli, cl2 = f"{NET}.0.10", f"{NET}.0.11"

    def rtp(port: int) -> dict[str, Any]:
        return {"client": cli, "to": STREAMER, "ports": [port, port + 1],
                "proto": "udp", "direction": "in"}  # fmt: skip

    cfg = {**net.portal_config("pinhole-secret"), "pinholes": [rtp(5008)]}
    cfg["dhcp"] = {"range": f"{NET}.0.100,{NET}.0.150,1h", "router": f"{NET}.0.1"}
    net.start_portal(cfg)
    pid = net.stats()["pid"]
    assert until(lambda: len(_children(pid)) == 1), net.portal_log()
    dnsmasq = _children(pid)
    assert "dnsmasq" in Path(f"/proc/{next(iter(dnsmasq))}/cmdline").read_text()
    got = {n: tmp_path / f"{n}.json" for n in ("cli", "cl2")}
    for n, ports in (("cli", ("5004", "5006", "5008")), ("cl2", ("5004",))):
        net.procs.append(netns.popen_in(net.ns(n), [sys.executable, "-c", RECEIVER,
                                                    str(got[n]), *ports]))  # fmt: skip
    assert until(lambda: all(f.exists() for f in got.values()))
    sender = netns.popen_in(
        net.ns("web"),
        [sys.executable, "-c", SENDER, f"{cli}:5004", f"{cli}:5006", f"{cl2}:5004",
         f"{cli}:5008"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    net.procs.append(sender)  # type: ignore[arg-type]

    def counts(n: str) -> dict[str, int]:
        try:
            r: dict[str, int] = json.loads(got[n].read_text())
        except (OSError, ValueError):
            return {}
        return r

    def burst(n: int) -> None:
        """Burst n sent; returns once the kept pinhole's port has all of it (what
        was sent before it through the same portal has arrived by then)."""
        assert sender.stdin is not None and sender.stdout is not None
        sender.stdin.write(f"burst {n}\n")
        sender.stdin.flush()
        assert sender.stdout.readline().strip() == "sent"
        assert until(lambda: counts("cli").get(f"5008 {n}") == 20), (
            counts("cli"),
            n,
            sh(net.ns("por"), "nft", "list", "ruleset").stdout,
        )

    def configure(holes: list[dict[str, Any]]) -> None:
        assert net.call({"op": "configure", "config": {**cfg, "pinholes": holes}}) == {
            "ok": True,
            "applied": True,
        }
        # the same portal and dnsmasq: nothing restarted
        assert net.stats()["pid"] == pid and _children(pid) == dnsmasq

    # no pinhole for 5004 yet: nothing of it arrives
    burst(1)
    assert counts("cli").keys() == {"5008 1"} and counts("cl2") == {}
    # added in place: exactly the client's 5004 gets the stream
    configure([rtp(5008), rtp(5004)])
    burst(2)
    assert counts("cli") == {"5008 1": 20, "5008 2": 20, "5004 2": 20}, counts("cli")
    assert counts("cl2") == {}
    burst(3)  # the flow established (the client answered each datagram)
    assert counts("cli")["5004 3"] == 20
    # the portal told neither side to bypass it (no ICMP redirect taken)
    for ns, dst in (("web", cli), ("cli", STREAMER)):
        route = sh(net.ns(ns), "ip", "route", "get", dst).stdout
        assert "via 10.74.1.1" in route or "via 10.74.0.1" in route, route
    # removed in place: the established flow ends with it
    configure([rtp(5008)])
    burst(4)
    assert "5004 4" not in counts("cli") and "5006 4" not in counts("cli"), counts("cli")
    assert counts("cl2") == {}
    assert net.stats()["logins"] == 0


def test_a_tcp_pinhole_changes_in_place_and_a_removed_one_ends_its_flows(
    net: PortalNet,
) -> None:
    """The streaming service's HTTP pinhole changed on the running portal (configure,
    as the agent sends a new configuration): one added lets its client in with the
    same process; one removed ends the connection it let through."""
    net.procs.append(netns.popen_in(net.ns("web"), [sys.executable, "-c", ECHO % STREAMER]))
    net.start_portal(net.portal_config("pinhole-secret"))
    pid = net.stats()["pid"]
    url = f"http://{STREAMER}:8080/hello.txt"
    assert net.curl("-m", "2", url).stdout == ""
    hole = {"client": f"{NET}.0.10", "to": STREAMER, "ports": [8080, 8082]}
    cfg = {**net.portal_config("pinhole-secret"), "pinholes": [hole]}
    assert net.call({"op": "configure", "config": cfg})["applied"] is True
    assert "hello from the web" in net.curl(url).stdout
    talk = netns.popen_in(net.ns("cli"), [sys.executable, "-c", TALK % STREAMER],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    net.procs.append(talk)  # type: ignore[arg-type]
    assert talk.stdin is not None and talk.stdout is not None
    talk.stdin.write("one\n")
    talk.stdin.flush()
    assert talk.stdout.readline().strip() == "one"
    assert net.call({"op": "configure", "config": {**cfg, "pinholes": []}})["applied"] is True
    talk.stdin.write("two\n")
    talk.stdin.flush()
    assert talk.stdout.readline().strip() == "NO ANSWER"
    assert net.curl("-m", "2", url).stdout == ""
    assert net.stats()["pid"] == pid
