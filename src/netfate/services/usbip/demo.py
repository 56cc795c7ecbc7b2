"""The Home Radio Head scenario on the testbed (examples/hrh.yaml): ``netfate demo hrh``.

A home (node ``hrh1``, kind hrh) with a serial temperature sensor and a
pendrive plugged into its HRH; the ISP's edge ``pe1`` 20 ms of RTT away.

check() walks through it, each step raising DemoFailed with the reason:

1. the HRH function (``hrh-usbip-host``: USB/IP inside mutual TLS) starts on
   the HRH, pinned there because that is where the devices are plugged in;
   the pendrive already holds a photo the family put on it at home;
2. the orchestrator says where the HRH's functions go (delay-bound policy):
   climate control (2 s bound) at the ISP, the alarm (15 ms) on the HRH;
3. the climate function starts at the ISP (placed by that policy), imports the
   sensor over the TLS tunnel and presents it as a pty; ``cat`` of the pty
   shows temperature readings (the paper's Fig. 7);
4. a function at the ISP imports the pendrive (its own certificate: the
   allow-list gives each identity only its device), copies the photo from it
   and copies the temperature log to it; the image file at home, i.e. the
   pendrive itself, then holds both;
5. both instances are destroyed.

The pendrive carries a tar archive written straight onto the block device (a
tape-style pendrive): there is no kernel block device here (no NBD/FUSE), and
tar needs no filesystem driver on either side.

The testbed runs with netfate's SDN controller (``SDN = True``: bridges in
secure mode, fabric intents).  The fabric would route the home's LAN to the
ISP's wholesale; the demo removes that intent, shows that USB/IP no longer
reaches the HRH, and asks the service for a tunnel instead (POST
/usbip/tunnels: the ISP's edge may reach the HRH function on tcp/3240 and
nothing else; the service's loop keeps its intent).  The climate function's
tunnel closes with the function; closing the other at the end cuts USB/IP
again.  Without a controller (a testbed built by hand) these steps are skipped
and said so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import selectors
import socket
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from netfate.demo.platform import Api, DemoFailed, Say
from netfate.demo.sdn import until
from netfate.host import netns
from netfate.host.netns import connect_in
from netfate.orchestrator.sdn.fabric import gateway
from netfate.orchestrator.sdn.intents import Endpoint
from netfate.testbed.builder import Testbed
from netfate.vnf.pki import CertificateAuthority
from netfate.vnf.tls import TlsFiles
from netfate.vnf.usbip_client import MassStorageClient
from netfate.vnf.usbip_client.tls import TlsRemoteDevice, client_context

TOPOLOGY = Path(__file__).parent / "topologies" / "hrh.yaml"
SDN = True
# USB/IP tunnels the service keeps (POST /usbip/tunnels; SDN intent usbip-NAME)
TUNNEL = "hrh1"  # the ISP's server LAN -> the HRH function
CLIMATE_TUNNEL = "hrh1-climate"  # the climate function -> the HRH function
HRH_NODE, ISP_NODE, HOME_HOST, ISP_HOST = "hrh1", "pe1", "laptop", "ispvm"
PORT = 3240
PENDRIVE_BYTES = 16 << 20
PHOTO = "family-photo.jpg"
LOG = "temperatures.log"


class _Home:
    """Certificates, the pendrive image and the pty link, in the run's state directory
    (removed with the testbed)."""

    def __init__(self, tb: Testbed) -> None:
        self.dir = tb.state.dir / "hrh"
        self.dir.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(self.dir / "pki")
        self.hrh = ca.issue(HRH_NODE, usage="server")
        self.climate = ca.issue("isp-climate", usage="client")
        self.storage = ca.issue("isp-storage", usage="client")
        # Where the run's functions may open storage images (--image-dir).
        tb.state.images.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.image = tb.state.images / "pendrive.img"
        self.link = tb.state.images / "ttyHRH"  # replaced by the function: below --image-dir
        self.photo = hashlib.sha256(b"netfate hrh demo").digest() * 4096  # 128 KiB
        # The family's photo, put on the pendrive at home before it is exported.
        with open(self.image, "wb") as f:
            f.write(_tar({PHOTO: self.photo}))
            f.truncate(PENDRIVE_BYTES)

    def hrh_config(self) -> dict[str, Any]:
        return {
            "host": "0.0.0.0",
            "port": PORT,
            "devices": [
                {"kind": "serial", "busid": "1-1", "period": 0.5},
                {"kind": "storage", "busid": "1-2", "image": str(self.image)},
            ],
            # each ISP function sees only its own device (certificate identities)
            "allow": {"1-1": ["isp-climate"], "1-2": ["isp-storage"]},
            "tls": self.hrh.to_config(),
        }

    def climate_config(self, hrh_ip: str) -> dict[str, Any]:
        return {
            "server": hrh_ip,
            "port": PORT,
            "busid": "1-1",
            "server_name": HRH_NODE,
            "link": str(self.link),
            "tls": self.climate.to_config(),
        }


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw + b"\0" * (-len(raw) % 512)  # whole blocks


def _untar(raw: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            if f is not None:
                out[m.name] = f.read()
    return out


def _ip(cidr: str | None) -> str:
    if not cidr:
        raise DemoFailed("the instance has no address")
    return cidr.split("/")[0]


def _cat(link: Path, lines: int, timeout: float) -> list[str]:
    """`cat` the pty as a user would; return the first ``lines`` temperature lines."""
    deadline = time.monotonic() + timeout
    while not link.exists():
        if time.monotonic() > deadline:
            raise DemoFailed(f"the climate function made no pty at {link}")
        time.sleep(0.05)
    proc = subprocess.Popen(["cat", str(link)], stdout=subprocess.PIPE)
    got: list[str] = []
    buf = b""
    try:
        if proc.stdout is None:
            raise DemoFailed("cat has no output pipe")
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        while len(got) < lines:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise DemoFailed(f"cat {link}: {len(got)} readings in {timeout:.0f} s: {got}")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise DemoFailed(f"cat {link} ended: {buf!r}")
            buf += chunk
            *done, buf = buf.split(b"\n")
            got += [ln.strip().decode() for ln in done if ln.strip().startswith(b"temp=")]
        sel.close()
    finally:
        proc.kill()  # our cat, by pid
        proc.wait(5)
    return got[:lines]


async def _pendrive(ns: str, hrh_ip: str, files: TlsFiles, log: bytes) -> dict[str, bytes]:
    """From the ISP node: import the pendrive over TLS, copy the photo from it and the
    temperature log to it; return what the pendrive holds afterwards."""
    s = await connect_in(ns, hrh_ip, PORT)
    dev = await TlsRemoteDevice.open_tls(
        hrh_ip, "1-2", PORT, context=client_context(files), server_hostname=HRH_NODE, sock=s
    )
    try:
        msc = await MassStorageClient.open(dev, depth=2)
        head = 4 << 20
        on_drive = _untar(await msc.read_blocks(0, head // msc.block_size))  # copy from
        on_drive[LOG] = log
        await msc.write_blocks(0, _tar(on_drive))  # copy to
        return _untar(await msc.read_blocks(0, head // msc.block_size))
    finally:
        await dev.close()


def _tcp_opens(tb: Testbed, ip: str, port: int = PORT, timeout: float = 2.0) -> bool:
    """Can the ISP's server ``ispvm`` (on pe1's LAN) open TCP to ``ip:port``?"""
    s = netns.socket_in(tb.netns_of(ISP_HOST), socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _gateway_intent(api: Api, inst: dict[str, Any]) -> None:
    """What the fabric gives every instance: its node's gateway (secure bridges
    pass nothing else).  Instances made after the testbed came up need it added."""
    api(
        "POST",
        "/intents",
        gateway(Endpoint("instance", inst["id"]), inst["node"]).model_dump(mode="json"),
    )


def _intent_active(api: Api, iid: str) -> bool:
    st = api("GET", f"/intents/{iid}")
    if st["state"] == "refused":
        raise DemoFailed(f"intent {iid} refused: {st.get('reason')}")
    return bool(st["state"] == "active")


def _close_home_and_open_tunnel(tb: Testbed, api: Api, hrh_ip: str, say: Say) -> None:
    lan = [
        i["intent"]["id"]
        for i in api("GET", "/intents")
        if i["intent"]["id"].startswith("fabric-lan-")
        and HRH_NODE in i["intent"]["id"]
        and ISP_NODE in i["intent"]["id"]
    ]
    for iid in lan:
        api("DELETE", f"/intents/{iid}")
    until("USB/IP to the HRH to be closed", lambda: not _tcp_opens(tb, hrh_ip))
    say(f"removed {lan}: the ISP's edge cannot open TCP to the HRH ({hrh_ip}:{PORT})")
    isp_lan = str(tb.topology.nodes[ISP_NODE].lans[0])
    t = api(
        "POST",
        "/usbip/tunnels",
        {"name": TUNNEL, "a": f"subnet:{isp_lan}@{ISP_NODE}",
         "b": f"subnet:{hrh_ip}/32@{HRH_NODE}", "port": PORT},
    )  # fmt: skip
    until(f"tunnel intent {t['intent']} active", lambda: _intent_active(api, t["intent"]))
    until("USB/IP through the tunnel", lambda: _tcp_opens(tb, hrh_ip))
    say(f"tunnel {TUNNEL} (intent {t['intent']}): {isp_lan}@{ISP_NODE} -> {hrh_ip}:{PORT}/tcp "
        "only, open")  # fmt: skip


def _start(tb: Testbed, home: _Home, say: Say) -> tuple[Api, dict[str, Any], dict[str, Any]]:
    if tb.api_url is None:
        raise DemoFailed("the testbed runs without orchestrator")
    api = Api(tb.api_url, tb.api_token)
    hrh = api(
        "POST",
        "/instances",
        {
            "descriptor": "hrh-usbip-host",
            "node": HRH_NODE,
            "serves": HOME_HOST,
            "config": home.hrh_config(),
        },
    )
    hrh = api.wait_state(hrh["id"], "running")
    hrh_ip = _ip(hrh["ip"])
    say(f"HRH function {hrh['id']} runs on {hrh['node']} at {hrh_ip}:{PORT} (USB/IP in mutual TLS)")
    if tb.state.sdn:
        _gateway_intent(api, hrh)
        _close_home_and_open_tunnel(tb, api, hrh_ip, say)
    else:
        say("no SDN controller on this testbed: tunnel intents skipped (the LANs are routed)")

    where: dict[str, str] = {}
    for name in ("hrh-climate", "hrh-alarm"):
        p = api("GET", f"/usbip/placement?descriptor={name}&serves={HOME_HOST}")
        where[name] = p["node"]
        say(f"{name} (bound {p['delay_bound_ms']:g} ms) would run on {p['node']}: {p['why']}")
    if where != {"hrh-climate": ISP_NODE, "hrh-alarm": HRH_NODE}:
        raise DemoFailed(f"unexpected placement {where}")

    climate = api(
        "POST",
        "/usbip/functions",
        {
            "descriptor": "hrh-climate",
            "serves": HOME_HOST,
            "config": home.climate_config(hrh_ip),
        },
    )
    if climate["node"] != ISP_NODE:
        raise DemoFailed(f"the climate function was placed on {climate['node']}")
    climate = api.wait_state(climate["id"], "running")
    if tb.state.sdn:
        time.sleep(2.0)  # its import keeps retrying, and gets nowhere without a tunnel
        if home.link.exists():
            raise DemoFailed("the climate function reached the HRH before any tunnel intent")
        say(f"climate function {climate['id']} runs but cannot reach the HRH: no tunnel yet")
        # The function got an address on the home's LAN (the LAN of the host it
        # serves), so it reaches the HRH on that L2 segment: a tunnel between
        # the two instances, USB/IP only.  Until then it retries in the background.
        t = api(
            "POST",
            "/usbip/tunnels",
            {"name": CLIMATE_TUNNEL, "a": f"instance:{climate['id']}",
             "b": f"instance:{hrh['id']}", "port": PORT},
        )  # fmt: skip
        until(f"tunnel intent {t['intent']} active", lambda: _intent_active(api, t["intent"]))
        say(f"tunnel {CLIMATE_TUNNEL}: {climate['id']} -> {hrh['id']}:{PORT}/tcp only")
    say(f"climate function {climate['id']} runs at the ISP ({climate['node']}), pty {home.link}")
    return api, hrh, climate


def check(tb: Testbed, say: Say) -> None:
    home = _Home(tb)
    api, hrh, climate = _start(tb, home, say)
    hrh_ip = _ip(hrh["ip"])

    readings = _cat(home.link, 3, timeout=20)
    say(f"cat {home.link.name} at the ISP: {' | '.join(readings)}")

    log = ("\n".join(readings) + "\n").encode()
    held = asyncio.run(_pendrive(tb.netns_of(ISP_HOST), hrh_ip, home.storage, log))
    if held.get(PHOTO) != home.photo:
        raise DemoFailed(f"the photo did not come back intact from the pendrive: {list(held)}")
    say(f"copied {PHOTO} ({len(home.photo) // 1024} KiB) from the pendrive at home to the ISP")
    at_home = _untar(home.image.read_bytes()[: 4 << 20])
    if at_home.get(LOG) != log or at_home.get(PHOTO) != home.photo:
        raise DemoFailed(f"the pendrive at home holds {list(at_home)} after the copy")
    say(f"copied {LOG} to the pendrive: the image at home now holds {sorted(at_home)}")

    # The storage identity cannot take the sensor: the allow-list is per certificate.
    async def steal() -> str:
        s = await connect_in(tb.netns_of(ISP_HOST), hrh_ip, PORT)
        try:
            dev = await TlsRemoteDevice.open_tls(
                hrh_ip, "1-1", PORT, context=client_context(home.storage),
                server_hostname=HRH_NODE, sock=s,
            )  # fmt: skip
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        await dev.close()
        raise DemoFailed("isp-storage imported the sensor, which is not its device")

    say(f"isp-storage asking for the sensor is refused: {asyncio.run(steal())}")

    api("DELETE", f"/instances/{climate['id']}")
    api.wait_state(climate["id"], "gone")
    if tb.state.sdn:
        # The service's loop closes the climate function's tunnel with the function.
        until(
            f"tunnel {CLIMATE_TUNNEL} to close with its function",
            lambda: CLIMATE_TUNNEL not in {t["name"] for t in api("GET", "/usbip/tunnels")},
        )
        say(f"tunnel {CLIMATE_TUNNEL} closed by the service with the climate function")
        api("DELETE", f"/usbip/tunnels/{TUNNEL}")
        until("USB/IP to be cut", lambda: not _tcp_opens(tb, hrh_ip))
        say(f"tunnel {TUNNEL} closed: the ISP's edge cannot reach the HRH again")
    api("DELETE", f"/instances/{hrh['id']}")
    api.wait_state(hrh["id"], "gone")
    deadline = time.monotonic() + 10
    while home.link.exists():
        if time.monotonic() > deadline:
            raise DemoFailed(f"{home.link} remains after the climate function stopped")
        time.sleep(0.05)
    say("destroyed both functions: the pty link is gone, the pendrive keeps its files")
    with contextlib.suppress(OSError):
        home.image.unlink()


def show(tb: Testbed, say: Say) -> None:
    """Leave the HRH and the climate function running for the person at the terminal."""
    home = _Home(tb)
    _api, _hrh, _climate = _start(tb, home, say)
    say(f"try: cat {home.link}")
