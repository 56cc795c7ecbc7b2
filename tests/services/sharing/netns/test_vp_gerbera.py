"""A second, independent media server and control points, active and passive, through a
share whose ports nobody typed (issue 13, items 1-3).

    d2: gerbera (Debian; libupnp) ── VP2 ══ VXLAN ══ VP1 ── d4: control points
    PN1 192.168.1.0/24 (gerbera 192.168.1.2:49152), PN2 192.168.0.0/24 (alias .13)

The share is made without `http_ports`: VP1 learns 49152 from the LOCATION it
rewrites. libupnp answers an M-SEARCH from an ephemeral port (the case issue 13
found leaking LOCATION: http://192.168.1.x into PN2). The control points are real
programs a person runs: `gssdp-discover` (Debian gupnp-tools, GSSDP) and
`upnp-client` (async-upnp-client's command line) searching by multicast (libupnp
ignores a unicast M-SEARCH, on its own LAN too), `upnp-client advertisements`
listening passively,
`upnp-client call-action` browsing, curl fetching. Every frame d4 receives is kept
and searched for any PN1 address (text, IP and ARP headers, mDNS records).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from netfate.demo import peers
from netfate.host import netns
from vp_rig import PN1_TEXT, SplitShare, leaks, split_share, status
from waiting import until

for tool in ("gerbera", "gssdp-discover", "curl", "ffmpeg"):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} missing (make deps)", allow_module_level=True)
pytest.importorskip("async_upnp_client")

UPNP_CLIENT = str(Path(sys.executable).parent / "upnp-client")
MEDIA_SERVER = "urn:schemas-upnp-org:device:MediaServer:1"
ALIAS, D4 = "192.168.0.13", "192.168.0.3"
LOCATION = f"http://{ALIAS}:{peers.GERBERA_PORT}/description.xml"
LISTEN = ("env", "PYTHONUNBUFFERED=1", "timeout")
"""A listener that runs for so many seconds, each line written as it is printed."""


@dataclass
class Rig:
    share: SplitShare
    media_sha: str
    server: subprocess.Popen[bytes]

    def d4(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.share.d4(*argv, timeout=timeout)

    @property
    def tmp(self) -> Path:
        return self.share.tmp


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("gerbera")
    with split_share(tmp, 5) as share:
        media = tmp / "media"
        media.mkdir()
        sha = hashlib.sha256(peers.make_tone(media / "tone.mp3", 2)).hexdigest()
        server = peers.start_gerbera(share.ns["d2"], tmp, media, share.ifs["a"])
        share.procs.append(server)
        yield Rig(share, sha, server)


def search(rig: Rig, *extra: str) -> list[dict[str, Any]]:
    """`upnp-client search` from d4: the search answers it printed (JSON lines)."""
    p = rig.d4(UPNP_CLIENT, "search", "--bind", D4, "--search_target", MEDIA_SERVER, *extra)
    out = []
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            out.append({k.lower(): v for k, v in json.loads(line).items()})
    return out


def test_active_search_answer_names_the_alias_and_its_port_is_learned(rig: Rig) -> None:
    answers: list[dict[str, Any]] = []

    def answered() -> bool:  # each search waits for answers a few seconds
        answers[:] = search(rig)
        return bool(answers)

    assert until(answered, 60), (rig.tmp / "gerbera.out").read_text()[-2000:]
    assert {a.get("location") for a in answers} == {LOCATION}
    ports = status(rig.tmp, "vp1")["stats"]["ports"]
    assert ports == {"configured": [], "learned": [peers.GERBERA_PORT],
                     "proxied": [peers.GERBERA_PORT]}  # fmt: skip
    alg = status(rig.tmp, "vp1")["stats"]["alg"]
    assert ssdp_sent(rig) > 0 and alg.get("alg_unparsed", 0) == 0
    # VP1 told its agent's next report (the owners' pages hear of it by that event).
    told = [e for e in status(rig.tmp, "vp1")["stats"]["events"]["items"]
            if e["kind"] == "PortsLearned"]  # fmt: skip
    assert told and told[-1]["learned"] == [peers.GERBERA_PORT], told
    assert told[-1]["proxied"] == [peers.GERBERA_PORT]


def test_gssdp_discover_finds_the_alias(rig: Rig) -> None:
    p = rig.d4("gssdp-discover", "-i", rig.share.ifs["f"], "-t", MEDIA_SERVER, "-n", "3")
    locations = {ln.split(":", 1)[1].strip() for ln in p.stdout.splitlines()
                 if ln.strip().startswith("Location:")}  # fmt: skip
    assert locations == {LOCATION}, p.stdout + p.stderr


def test_passive_listener_sees_notify_alive_with_the_alias(rig: Rig) -> None:
    p = rig.d4(*LISTEN, "5", UPNP_CLIENT, "advertisements", "--bind", D4, timeout=30)
    seen = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    alive = [{k.lower(): v for k, v in s.items()} for s in seen]
    alive = [a for a in alive if a.get("nts") == "ssdp:alive"]
    assert alive, p.stdout + p.stderr
    assert {a["location"] for a in alive} == {LOCATION}


def test_browse_and_fetch_through_the_learned_port(rig: Rig) -> None:
    stack, url = ["0"], None
    while stack and url is None:
        p = rig.d4(UPNP_CLIENT, "call-action", LOCATION, "ContentDirectory/Browse",
                   f"ObjectID={stack.pop()}", "BrowseFlag=BrowseDirectChildren", "Filter=*",
                   "StartingIndex=0", "RequestedCount=100", "SortCriteria=")  # fmt: skip
        assert p.returncode == 0, p.stderr[-2000:]
        result = json.loads(p.stdout)["out_parameters"]["Result"]
        assert PN1_TEXT.decode() not in result
        assert ALIAS in result or "<item" not in result
        for kind, ident, res in _didl(result):
            if kind == "container":
                stack.append(ident)
            elif res:
                url = res
    assert url is not None and url.startswith(f"http://{ALIAS}:{peers.GERBERA_PORT}/")
    out = rig.tmp / "fetched.mp3"
    p = rig.d4("curl", "-sS", "-o", str(out), url)
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == rig.media_sha
    stats = status(rig.tmp, "vp1")["stats"]["alg"]
    assert stats["http_rewritten"] >= 2 and stats["http_streamed"] >= 1


def _didl(result: str) -> list[tuple[str, str, str | None]]:
    import xml.etree.ElementTree as ET

    out = []
    for el in ET.fromstring(result):
        tag = el.tag.rsplit("}", 1)[-1]
        res = next((c.text for c in el if c.tag.endswith("res")), None)
        out.append((tag, el.get("id", ""), res))
    return out


def _lines(stream: IO[bytes], deadline: float) -> Iterator[bytes]:
    """Lines of a child's output as they come, until it ends or `deadline` passes."""
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line


def ssdp_sent(rig: Rig) -> int:
    return int(status(rig.tmp, "vp1")["stats"]["alg"].get("ssdp", 0))


def test_byebye_passes_and_nothing_of_pn1_reached_pn2(rig: Rig) -> None:
    # The last test: gerbera leaves (SIGTERM: libupnp sends ssdp:byebye).
    capture = rig.share.capture
    assert capture is not None
    # No `timeout` wrapper: killing it would leave its child running; the listener is
    # the process started here (ip netns exec and env exec it), ended by its pid.
    listener = netns.popen_in(
        rig.share.ns["d4"], ["env", "PYTHONUNBUFFERED=1", UPNP_CLIENT, "advertisements",
                             "--bind", D4],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert listener.stdout is not None
    seen: list[dict[str, Any]] = []
    stopping = False
    deadline = time.monotonic() + 30
    try:
        for line in _lines(listener.stdout, deadline):
            if not line.startswith(b"{"):
                continue
            seen.append({k.lower(): v for k, v in json.loads(line).items()})
            if seen[-1].get("nts") == "ssdp:alive" and not stopping:
                rig.server.terminate()  # the listener is up: gerbera leaves (once)
                stopping = True
            if seen[-1].get("nts") == "ssdp:byebye":
                break
    finally:
        listener.kill()
        listener.wait()
    byebye = [a for a in seen if a.get("nts") == "ssdp:byebye"]
    # libupnp's byebye carries LOCATION too: rewritten like the alive's.
    assert byebye and {a.get("location", LOCATION) for a in byebye} == {LOCATION}, (
        [a.get("nts") for a in seen],
        sum(b"ssdp:byebye" in f for f in capture.frames),
        status(rig.tmp, "vp1")["stats"]["alg"],
        (rig.tmp / "gerbera.out").read_text()[-500:],
    )
    assert rig.server.wait(15) is not None
    capture.close()
    frames = capture.frames
    assert any(LOCATION.encode() in f for f in frames)
    assert leaks(frames) == []
