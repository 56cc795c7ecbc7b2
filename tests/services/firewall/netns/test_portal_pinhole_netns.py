"""The captive portal's pinholes in namespaces (gate.py): a captive client let
through to one address's TCP ports (the streaming service's viewer, signed in at its
front-end, to its edge streamer on a neighbour PE) reaches exactly those; its other
traffic stays captive and another client gets nothing of it.

The portal rig of test_portal_netns.py (portal_rig.PortalNet) with a second client
NET.0.11: the web host NET.1.20 stands for the streamer, with servers on 8080 (the
pinhole's port), 8081 (not) and 80.
"""

from __future__ import annotations

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
