"""Third-party devices and control points for the sharing scenarios, started inside a
host's namespace: real software a person uses, configured the way it ships.

- `start_gerbera`: Debian's gerbera (a libupnp media server) on its default port,
  49152, announcing itself every second (alive 62, the minimum). libupnp answers an
  M-SEARCH from an ephemeral port, not from 1900.
- `start_camera`: a camera-like device, GStreamer's RTSP server (Debian's
  gir1.2-gst-rtsp-server-1.0, a live H.264 test picture) on 554, announced over mDNS
  as `_rtsp._tcp` by python-zeroconf (Debian's python3-zeroconf) with an A record,
  a SRV record for 554 and a TXT string holding its URL, as cameras do.
- `MDNS_BROWSE`: a python-zeroconf browser (its first query asks for unicast
  answers, QU) that prints the camera's resolved service as JSON.
- `DISCOVERY_TO_FIRST_BYTE`: an async-upnp-client control point that discovers a
  media server actively (M-SEARCH, MX 1) or passively (waits for a NOTIFY alive),
  reads its description, browses its ContentDirectory and fetches an item, and
  prints the time from the discovery step (the first M-SEARCH sent, or the NOTIFY
  received) to the first media byte as JSON, with the search answer's share of it.

The camera and the browser run under Debian's python3 (/usr/bin/python3), which has
GObject introspection and zeroconf; the control point under the project's own.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

from netfate.host import netns

SYSTEM_PYTHON = "/usr/bin/python3"
GERBERA_PORT = 49152
DAD_WAIT_S = 5.0

GERBERA_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<config version="2" xmlns="http://mediatomb.cc/config/2">
  <server>
    <ui enabled="no"/>
    <name>{name}</name>
    <udn>uuid:{udn}</udn>
    <home>{home}</home>
    <webroot>/usr/share/gerbera/web</webroot>
    <alive>62</alive>
    <storage>
      <sqlite3 enabled="yes"><database-file>gerbera.db</database-file></sqlite3>
    </storage>
  </server>
  <import hidden-files="no">
    <scripting script-charset="UTF-8">
      <virtual-layout type="builtin"/>
    </scripting>
    <online-content>
      <YouTube enabled="no"/>
    </online-content>
    <mappings>
      <extension-mimetype ignore-unknown="no"><map from="mp3" to="audio/mpeg"/></extension-mimetype>
      <mimetype-contenttype><treat mimetype="audio/mpeg" as="mp3"/></mimetype-contenttype>
    </mappings>
  </import>
  <transcoding enabled="no"/>
</config>
"""


def make_tone(path: Path, seconds: int = 1) -> bytes:
    """A 440 Hz MP3 made by ffmpeg at `path` (the media a server shares); its bytes."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds}", "-y", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path.read_bytes()


def gerbera_available() -> bool:
    return shutil.which("gerbera") is not None


def start_gerbera(
    ns: str, work: Path, media: Path, interface: str, name: str = "netfate-gerbera"
) -> subprocess.Popen[bytes]:
    """gerbera in `ns`, serving `media`, bound to `interface`; its output goes to
    work/gerbera.out. The caller stops it (by this process).

    libupnp binds the interface's IPv6 link-local address too, and fails to start
    while that address is still tentative (duplicate address detection, about a
    second after the link comes up): so it is started once none is."""
    deadline = time.monotonic() + DAD_WAIT_S
    while time.monotonic() < deadline:
        tentative = netns.run_in(ns, ["ip", "-6", "addr", "show", "dev", interface, "tentative"],
                                 check=False)  # fmt: skip
        if tentative.returncode == 0 and not tentative.stdout.strip():
            break
        time.sleep(0.05)
    home = work / "gerbera"
    home.mkdir(parents=True, exist_ok=True)
    conf = home / "config.xml"
    conf.write_text(GERBERA_CONFIG.format(name=name, udn=uuid.uuid4(), home=home))
    with open(work / "gerbera.out", "wb") as log:
        return netns.popen_in(
            ns,
            ["gerbera", "-c", str(conf), "--interface", interface, "--port", str(GERBERA_PORT),
             "--add", str(media)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


CAMERA = r"""
import signal, socket, sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
from zeroconf import IPVersion, ServiceInfo, Zeroconf

address, path, name = sys.argv[1], sys.argv[2], sys.argv[3]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address(address)
server.set_service("554")
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )")
factory.set_shared(True)
server.get_mount_points().add_factory(path, factory)
server.attach(None)
zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
info = ServiceInfo(
    "_rtsp._tcp.local.", f"{name}._rtsp._tcp.local.", port=554, server="camera.local.",
    addresses=[socket.inet_aton(address)],
    properties={"path": path, "url": f"rtsp://{address}:554{path}"})
zc.register_service(info)
loop = GLib.MainLoop()
GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
print("ready", flush=True)
loop.run()
zc.unregister_service(info)
zc.close()
"""

MDNS_BROWSE = r"""
import json, sys, time
from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

address, kind, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
found = []
def changed(zeroconf, service_type, name, state_change):
    if state_change is ServiceStateChange.Added:
        found.append(name)
ServiceBrowser(zc, kind, handlers=[changed])
deadline = time.monotonic() + timeout
while not found and time.monotonic() < deadline:
    time.sleep(0.05)
out = {"found": found}
if found:
    info = zc.get_service_info(kind, found[0], timeout=int(timeout * 1000))
    if info is not None:
        out.update(addresses=info.parsed_addresses(), port=info.port, server=info.server,
                   properties={k.decode(): (v or b"").decode()
                               for k, v in info.properties.items()})
zc.close()
print(json.dumps(out))
"""


def camera_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer; import zeroconf")  # fmt: skip
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


def start_camera(
    ns: str, work: Path, address: str, path: str = "/cam", name: str = "Front door"
) -> subprocess.Popen[bytes]:
    """The camera in `ns` at `address`: RTSP on 554 and its mDNS announcement; output
    in work/camera.out ("ready" once both are up)."""
    script = work / "camera.py"
    script.write_text(CAMERA)
    with open(work / "camera.out", "wb") as log:
        return netns.popen_in(
            ns, [SYSTEM_PYTHON, str(script), address, path, name],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


DISCOVERY_TO_FIRST_BYTE = r"""
import asyncio, json, sys, time
import xml.etree.ElementTree as ET
import aiohttp
from async_upnp_client.aiohttp import AiohttpRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.search import async_search
from async_upnp_client.ssdp_listener import SsdpAdvertisementListener

MEDIA_SERVER = "urn:schemas-upnp-org:device:MediaServer:1"

async def discover(mode, src, via):
    # (monotonic time of the discovery step, of the answer naming `via`, its LOCATION)
    got = asyncio.get_running_loop().create_future()
    def take(headers):
        loc = headers.get("location") or ""
        if loc.startswith(f"http://{via}:") and not got.done():
            got.set_result((time.monotonic(), loc))
    if mode == "active":
        # MX 1 (the minimum): the device answers after a random delay of up to 1 s.
        async def cb(headers):
            take(headers)
        t0 = time.monotonic()
        while not got.done() and time.monotonic() - t0 < 10:
            # A search listens for its whole timeout: go on at the first answer.
            search = asyncio.ensure_future(async_search(
                cb, timeout=1, source=(src, 0), search_target=MEDIA_SERVER))
            await asyncio.wait({search, got}, return_when=asyncio.FIRST_COMPLETED)
            search.cancel()
        t1, loc = await asyncio.wait_for(got, 1)
        return t0, t1, loc
    listener = SsdpAdvertisementListener(on_alive=take, source=(src, 0))
    await listener.async_start()
    try:
        t1, loc = await asyncio.wait_for(got, 30)
        return t1, t1, loc
    finally:
        await listener.async_stop()

async def main(mode, src, via):
    t0, t_answer, loc = await discover(mode, src, via)
    dev = await UpnpFactory(AiohttpRequester()).async_create_device(loc)
    browse = dev.service("urn:schemas-upnp-org:service:ContentDirectory:1").action("Browse")
    stack, url = ["0"], None
    while stack and url is None:
        r = await browse.async_call(ObjectID=stack.pop(), BrowseFlag="BrowseDirectChildren",
                                    Filter="*", StartingIndex=0, RequestedCount=200,
                                    SortCriteria="")
        for el in ET.fromstring(r["Result"]):
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "container":
                stack.append(el.get("id"))
            elif tag == "item" and url is None:
                url = next(c.text for c in el if c.tag.endswith("res"))
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        first = await resp.content.readany()
        t1 = time.monotonic()
    print(json.dumps({"mode": mode, "location": loc, "url": url, "first_bytes": len(first),
                      "discovery_to_first_byte_ms": (t1 - t0) * 1000,
                      "answer_ms": (t_answer - t0) * 1000,
                      "location_to_first_byte_ms": (t1 - t_answer) * 1000}))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""
