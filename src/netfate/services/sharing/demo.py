"""`netfate demo sharing`: the seed's scenarios on a real testbed (examples/hotel.yaml).

check(): every node with a LAN becomes a Personal Network (owner email
`<node>@<topology>.example`). Each share of the topology's plan is requested,
accepted, and proved: a host of the recipient PN talks to the shared device at
its PN-local alias (UDP and ping), and the device sees that host at a PN1-local
alias. Then the negative cases: an unshared device of PN1 cannot use the share,
a third PN gets nothing through it. Finally revocation removes the VPs and the
alias stops answering. Each step raises DemoFailed with its reason.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from netfate.demo.platform import Api, DemoFailed, Say
from netfate.host import netns
from netfate.testbed.builder import Testbed

TOPOLOGY = "hotel.yaml"

# topology name -> shares (owner node, device, recipient node)
PLANS: dict[str, list[tuple[str, str, str]]] = {
    "hotel": [("home", "mediaserver", "hotel")],
    "classroom": [
        ("teacher", "tlaptop", "school"),
        ("student1", "s1tablet", "school"),
        ("student2", "s2tablet", "school"),
    ],
    "surveillance": [("site1", "cam1", "ops"), ("site2", "cam2", "ops"), ("site3", "cam3", "ops")],
}
PORT = 7070


def email(tb: Testbed, node: str) -> str:
    return f"{node}@{tb.topology.name}.example"


@dataclass
class Share:
    id: int
    owner_node: str
    device: str
    recipient_node: str
    alias: str
    """The device's address in the recipient PN."""
    att: dict[str, Any]
    setup_ms: float
    """From the accept call to the first packet delivered through the share."""


@contextlib.contextmanager
def udp_in(ns: str, bind: tuple[str, int] = ("0.0.0.0", 0)) -> Iterator[socket.socket]:
    s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(bind)
        s.settimeout(5.0)
        yield s
    finally:
        s.close()


def create_pns(tb: Testbed, api: Api) -> None:
    for name, node in tb.topology.nodes.items():
        if node.lans:
            api("POST", "/sharing/pns", {"email": email(tb, name), "node": name})


def wait_active(api: Api, sid: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sh: dict[str, Any] = api("GET", f"/sharing/shares/{sid}")
        if sh["state"] == "active":
            return sh
        if sh["state"] in ("failed", "revoked", "declined"):
            raise DemoFailed(f"share {sid} is {sh['state']}: {sh['detail']}")
        if time.monotonic() > deadline:
            raise DemoFailed(f"share {sid} still {sh['state']} after {timeout:.0f} s")
        time.sleep(0.02)


def first_delivery(tb: Testbed, device: str, client: str, alias: str, timeout: float) -> None:
    """Send until the device gets a datagram at its alias (the share is usable)."""
    with udp_in(tb.netns_of(device), ("0.0.0.0", PORT)) as srv, udp_in(tb.netns_of(client)) as c:
        srv.settimeout(0.01)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c.sendto(b"probe", (alias, PORT))
            try:
                srv.recvfrom(100)
                return
            except TimeoutError:
                continue
    raise DemoFailed(f"{client} never reached {device} at {alias}")


def share_and_accept(tb: Testbed, api: Api, owner: str, device: str, to: str) -> Share:
    sh = api("POST", "/sharing/shares", {"owner": email(tb, owner), "device": device,
                                          "recipient": email(tb, to)})  # fmt: skip
    client = next(h.name for h in tb.topology.hosts.values() if h.node == to)
    t0 = time.monotonic()
    acc = api("POST", f"/sharing/shares/{sh['id']}/accept", {"by": email(tb, to)})
    alias = acc["att"]["import_alias"]
    wait_active(api, sh["id"])
    first_delivery(tb, device, client, alias, timeout=30.0)
    ms = (time.monotonic() - t0) * 1000
    return Share(sh["id"], owner, device, to, alias, acc["att"], ms)


def prove_usable(tb: Testbed, sh: Share, say: Say) -> None:
    """Each recipient host reaches the device at the alias and is seen at a PN1 alias."""
    pn1_alias = {d: a for a, d in sh.att["entries"]}
    for h in [h for h in tb.topology.hosts.values() if h.node == sh.recipient_node]:
        with (
            udp_in(tb.netns_of(sh.device), ("0.0.0.0", PORT)) as srv,
            udp_in(tb.netns_of(h.name)) as cli,
        ):
            hello = f"hello from {h.name}".encode()
            cli.sendto(hello, (sh.alias, PORT))
            try:
                # Late probes of first_delivery() may still be on their way: skip them.
                while (got := srv.recvfrom(200))[0] != hello:
                    pass
                data, peer = got
                srv.sendto(b"reply " + data, peer)
                _, frm = cli.recvfrom(200)
            except TimeoutError:
                raise DemoFailed(f"{h.name} cannot talk to {sh.device} at {sh.alias}") from None
        want = pn1_alias.get(str(h.ip))
        if peer[0] != want or frm[0] != sh.alias:
            raise DemoFailed(f"{sh.device} saw {h.name} as {peer[0]} (want {want}), reply from "
                             f"{frm[0]} (want {sh.alias})")  # fmt: skip
        netns.run_in(tb.netns_of(h.name), ["ping", "-c", "1", "-W", "5", sh.alias])
        say(f"{h.name} ({h.ip}) uses {sh.device} at {sh.alias}; {sh.device} sees it as {peer[0]}")


def only_sentinel(tb: Testbed, receiver: str, intruder: str, legit: str, dst: str) -> None:
    """`intruder` sends to `dst` first, `legit` second: `receiver` must get only the second.

    Ordering instead of a timeout: both go the same way, so had the first got
    through it would have arrived first.
    """
    with (
        udp_in(tb.netns_of(receiver), ("0.0.0.0", PORT)) as srv,
        udp_in(tb.netns_of(intruder)) as bad,
        udp_in(tb.netns_of(legit)) as good,
    ):
        # Twice: the first round also resolves every ARP entry on the way, so that
        # in the second an intruder's datagram cannot be overtaken by the sentinel.
        for n in (1, 2):
            bad.sendto(b"intruder", (dst, PORT))
            good.sendto(b"sentinel%d" % n, (dst, PORT))
            data, _ = srv.recvfrom(100)
            if data != b"sentinel%d" % n:
                raise DemoFailed(f"{intruder} got through to {receiver} via {dst}")


def prove_isolation(tb: Testbed, sh: Share, say: Say) -> None:
    hosts = tb.topology.hosts.values()
    d2 = sh.device
    owners = [h.name for h in hosts if h.node == sh.owner_node and h.name != d2]
    recips = [h.name for h in hosts if h.node == sh.recipient_node]
    thirds = [h.name for h in hosts if h.node not in (sh.owner_node, sh.recipient_node)]
    if owners:
        # An unshared PN1 device cannot use VP2's aliases to reach PN2.
        (alias, dev) = sh.att["entries"][0]
        target = next(h.name for h in hosts if str(h.ip) == dev)
        only_sentinel(tb, target, owners[0], d2, alias)
        say(f"{owners[0]} (not shared) cannot reach {target} through the share")
    if thirds:
        # A third PN's packets to the alias go nowhere: VP2 drops unknown senders.
        only_sentinel(tb, d2, thirds[0], recips[0], sh.alias)
        say(f"{thirds[0]} (a third PN) gets nothing through the share")


def revoke(tb: Testbed, api: Api, sh: Share, by: str, say: Say) -> None:
    view = api("POST", f"/sharing/shares/{sh.id}/revoke", {"by": email(tb, by)})
    for iid in (view["vp2_instance"], view["vp1_instance"]):
        api.wait_state(iid, "gone")
    deadline = time.monotonic() + 10
    while left := [n for n in netns.list_with_prefix(tb.prefix + "-")
                   if view["vp2_instance"] in n or view["vp1_instance"] in n]:  # fmt: skip
        if time.monotonic() > deadline:
            raise DemoFailed(f"VP namespaces remain after revocation: {left}")
        time.sleep(0.05)
    client = next(h.name for h in tb.topology.hosts.values() if h.node == sh.recipient_node)
    ping = netns.run_in(tb.netns_of(client), ["ping", "-c", "1", "-W", "1", sh.alias], check=False)
    if ping.returncode == 0:
        raise DemoFailed(f"{sh.alias} still answers after revocation")
    say(f"share {sh.id} revoked by {email(tb, by)}: VPs, aliases and overlay are gone")


def check(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    api = Api(tb.api_url)
    create_pns(tb, api)
    pns = [email(tb, n) for n, spec in tb.topology.nodes.items() if spec.lans]
    say(f"Personal Networks: {', '.join(pns)}")
    shares = []
    for owner, device, to in PLANS.get(tb.topology.name, []):
        sh = share_and_accept(tb, api, owner, device, to)
        say(f"share {sh.id}: {device} of {email(tb, owner)} is {sh.alias} in {email(tb, to)}; "
            f"accept -> first packet {sh.setup_ms:.0f} ms")  # fmt: skip
        shares.append(sh)
    for sh in shares:
        prove_usable(tb, sh, say)
        prove_isolation(tb, sh, say)
    for i, sh in enumerate(shares):
        revoke(tb, api, sh, sh.owner_node if i % 2 == 0 else sh.recipient_node, say)


def show(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        return
    api = Api(tb.api_url)
    create_pns(tb, api)
    for owner, device, to in PLANS.get(tb.topology.name, []):
        sh = share_and_accept(tb, api, owner, device, to)
        say(f"{device} of {email(tb, owner)} is {sh.alias} in {email(tb, to)}")
    say(f"owners' pages: {tb.api_url}/api/v1/sharing/page")
