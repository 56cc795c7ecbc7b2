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
import hashlib
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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


def share_and_accept(
    tb: Testbed, api: Api, owner: str, device: str, to: str, http_ports: list[int] | None = None
) -> Share:
    sh = api("POST", "/sharing/shares", {"owner": email(tb, owner), "device": device,
                                          "recipient": email(tb, to),
                                          "http_ports": http_ports or []})  # fmt: skip
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
            # UDP over emulated links: a datagram may be lost (an ARP entry still being
            # resolved, a relay busy), so a few tries, each bounded by the timeout.
            for attempt in range(4):
                cli.sendto(hello, (sh.alias, PORT))
                try:
                    # Late probes of first_delivery() may still be on their way: skip them.
                    while (got := srv.recvfrom(200))[0] != hello:
                        pass
                    data, peer = got
                    srv.sendto(b"reply " + data, peer)
                    _, frm = cli.recvfrom(200)
                    break
                except TimeoutError:
                    if attempt == 3:
                        raise DemoFailed(
                            f"{h.name} cannot talk to {sh.device} at {sh.alias}"
                        ) from None
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
    intents = [i["intent"]["id"] for i in api("GET", "/intents")]
    if f"share-{sh.id}-overlay" in intents:
        raise DemoFailed(f"the overlay's tunnel intent of share {sh.id} remains")
    client = next(h.name for h in tb.topology.hosts.values() if h.node == sh.recipient_node)
    ping = netns.run_in(tb.netns_of(client), ["ping", "-c", "1", "-W", "1", sh.alias], check=False)
    if ping.returncode == 0:
        raise DemoFailed(f"{sh.alias} still answers after revocation")
    say(f"share {sh.id} revoked by {email(tb, by)}: VPs, aliases, overlay and its intent are gone")


# A UPnP/DLNA control point (PyPI async-upnp-client), run as a separate process in
# a PN2 host's namespace: discover a MediaServer by SSDP, read its description,
# browse its ContentDirectory down to the first item and fetch it.
CONTROL_POINT = r"""
import asyncio, hashlib, json, sys
import xml.etree.ElementTree as ET
import aiohttp
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.search import async_search

async def main(src, via):
    found = []
    async def cb(headers):
        found.append({k.lower(): v for k, v in headers.items()})
    for _ in range(5):
        await async_search(cb, timeout=2, source=(src, 0),
                           search_target="urn:schemas-upnp-org:device:MediaServer:1")
        if found:
            break
    locs = sorted({h["location"] for h in found if "location" in h})
    mine = [u for u in locs if u.startswith(f"http://{via}:")]
    dev = await UpnpFactory(AiohttpRequester()).async_create_device(mine[0])
    browse = dev.service("urn:schemas-upnp-org:service:ContentDirectory:1").action("Browse")
    stack, items = ["0"], []
    while stack and not items:
        r = await browse.async_call(ObjectID=stack.pop(), BrowseFlag="BrowseDirectChildren",
                                    Filter="*", StartingIndex=0, RequestedCount=200,
                                    SortCriteria="")
        for el in ET.fromstring(r["Result"]):
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "container":
                stack.append(el.get("id"))
            elif tag == "item":
                items.append([c.text for c in el if c.tag.endswith("res")])
    url = items[0][0]
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        data = await resp.read()
    print(json.dumps({"locations": locs, "used": mine[0], "name": dev.friendly_name, "url": url,
                      "sha": hashlib.sha256(data).hexdigest(), "size": len(data)}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def dlna_available() -> bool:
    return (
        shutil.which("minidlnad") is not None
        and importlib.util.find_spec("async_upnp_client") is not None
    )


def prove_dlna(tb: Testbed, api: Api, say: Say) -> None:
    """Real DLNA through a share: minidlnad on the media server, a control point on the TV."""
    hosts = tb.topology.hosts
    work = Path(tempfile.mkdtemp(prefix=f"{tb.prefix}-dlna-"))
    procs: list[subprocess.Popen[bytes]] = []
    sh: Share | None = None
    try:
        media = work / "media"
        media.mkdir()
        (work / "db").mkdir()
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=1", "-y", str(media / "tone.mp3")],
                       check=True, timeout=60)  # fmt: skip
        sha = hashlib.sha256((media / "tone.mp3").read_bytes()).hexdigest()
        conf = work / "minidlna.conf"
        conf.write_text(
            f"media_dir=A,{media}\nport=8200\nnetwork_interface=eth0\nfriendly_name=home-nas\n"
            f"db_dir={work / 'db'}\nlog_dir={work}\ninotify=no\nnotify_interval=5\n"
        )
        with open(work / "minidlna.out", "wb") as log:
            procs.append(netns.popen_in(
                tb.netns_of("mediaserver"),
                ["minidlnad", "-f", str(conf), "-d", "-P", str(work / "minidlna.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            ))  # fmt: skip
        sh = share_and_accept(tb, api, "home", "mediaserver", "hotel", http_ports=[8200])
        script = work / "cp.py"
        script.write_text(CONTROL_POINT)
        tv_ip = str(hosts["tv"].ip)
        out: dict[str, Any] | None = None
        err = ""
        for _ in range(10):  # minidlna indexes the media after it starts
            proc = netns.run_in(tb.netns_of("tv"), [sys.executable, str(script), tv_ip,
                                                    sh.alias], check=False, timeout=60)  # fmt: skip
            if proc.returncode == 0:
                out = json.loads(proc.stdout)
                break
            err = proc.stderr[-1000:]
            time.sleep(0.5)
        if out is None:
            raise DemoFailed(f"the control point on tv failed: {err}")
        # The testbed's bridges flood multicast between all LANs (a platform property),
        # so the server may also answer directly with its PN1 address; the control
        # point uses the answer that came through the share, whose URLs must all
        # name the alias.
        want = f"http://{sh.alias}:8200/"
        if want + "rootDesc.xml" not in out["locations"] or not out["url"].startswith(want):
            raise DemoFailed(f"URLs not rewritten to the alias {sh.alias}: {out}")
        if out["sha"] != sha:
            raise DemoFailed("the media fetched through the share differs from the file")
        say(f"DLNA: tv discovered '{out['name']}' at {out['used']}, browsed it and "
            f"fetched {out['url']} ({out['size']} bytes, identical)")  # fmt: skip
    finally:
        if sh is not None:
            revoke(tb, api, sh, "home", lambda _m: None)
        for p in procs:  # only the server this step started, by its pid
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        shutil.rmtree(work, ignore_errors=True)


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
    if tb.topology.name == "hotel":
        if dlna_available():
            prove_dlna(tb, api, say)
        else:
            say("DLNA step skipped: needs Debian minidlna and PyPI async-upnp-client")


def show(tb: Testbed, say: Say) -> None:
    if tb.api_url is None:
        return
    api = Api(tb.api_url)
    create_pns(tb, api)
    for owner, device, to in PLANS.get(tb.topology.name, []):
        sh = share_and_accept(tb, api, owner, device, to)
        say(f"{device} of {email(tb, owner)} is {sh.alias} in {email(tb, to)}")
    say(f"owners' pages: {tb.api_url}/api/v1/sharing/page")
