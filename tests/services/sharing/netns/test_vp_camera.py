"""A camera-like device through a share: mDNS discovery and RTSP on 554, no port typed
(issue 13, items 1-3; the seed's surveillance scenario).

    d2: GStreamer RTSP server on 554 + mDNS (python-zeroconf) ── VP2 ══ VP1 ── d4
    PN1 192.168.1.0/24 (camera 192.168.1.2), PN2 192.168.0.0/24 (alias .13)

The camera announces `_rtsp._tcp` (SRV 554, A 192.168.1.2, a TXT string with its
URL). In PN2 a python-zeroconf browser (first question QU: the answer comes back
unicast) must resolve it to the alias, which teaches VP1 the port 554; then ffmpeg
plays the stream over RTSP with RTP over UDP (the camera sends RTP to the client's
VP2 alias, which the kernel path carries) and over TCP (interleaved). The RTSP ALG
rewrites Content-Base, RTP-Info and the SDP's o=/c= lines and a=control URLs; every
frame d4 receives is searched for a PN1 address.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from collections.abc import Iterator

import pytest

from netfate.demo import peers
from vp_rig import SplitShare, leaks, split_share, status
from waiting import until

if shutil.which("ffmpeg") is None or not peers.camera_available():
    pytest.skip("ffmpeg, GStreamer's RTSP server or python3-zeroconf missing (make deps)",
                allow_module_level=True)  # fmt: skip

ALIAS, D4 = "192.168.0.13", "192.168.0.3"
URL = f"rtsp://{ALIAS}:554/cam"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SplitShare]:
    tmp = tmp_path_factory.mktemp("camera")
    with split_share(tmp, 7) as share:
        share.procs.append(peers.start_camera(share.ns["d2"], tmp, "192.168.1.2"))
        out = tmp / "camera.out"
        assert until(lambda: out.exists() and "ready" in out.read_text(), 30), out.read_text()
        yield share


def test_mdns_resolves_the_camera_to_the_alias(rig: SplitShare) -> None:
    script = rig.tmp / "browse.py"
    script.write_text(peers.MDNS_BROWSE)
    p = rig.d4(peers.SYSTEM_PYTHON, str(script), D4, "_rtsp._tcp.local.", "10")
    assert p.returncode == 0, p.stderr[-2000:]
    found = json.loads(p.stdout)
    assert found["found"] == ["Front door._rtsp._tcp.local."], found
    assert found["addresses"] == [ALIAS] and found["port"] == 554
    assert found["properties"] == {"path": "/cam", "url": URL}
    st = status(rig.tmp, "vp1")["stats"]
    assert st["ports"]["learned"] == [554] and st["ports"]["proxied"] == [554]
    assert st["alg"]["mdns"] > 0


def _play(rig: SplitShare, transport: str) -> str:
    p = rig.d4("ffmpeg", "-nostdin", "-loglevel", "info", "-rtsp_transport", transport,
               "-i", URL, "-frames:v", "10", "-f", "null", "-", timeout=90)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stderr


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ffmpeg_plays_the_stream_through_the_alias(rig: SplitShare, transport: str) -> None:
    if not status(rig.tmp, "vp1")["stats"]["ports"]["proxied"]:
        test_mdns_resolves_the_camera_to_the_alias(rig)  # the port is learned by discovery
    err = _play(rig, transport)
    assert re.search(r"Stream #0:0: Video: h264.*320x240", err), err[-2000:]
    assert "retrying with TCP" not in err  # the transport asked for, not a fallback
    frames = re.findall(r"frame=\s*(\d+)", err)
    assert frames and int(frames[-1]) >= 10
    assert status(rig.tmp, "vp1")["stats"]["alg"]["tcp_rtsp"] >= 1


def test_nothing_of_pn1_reached_pn2(rig: SplitShare) -> None:
    assert rig.capture is not None
    rig.capture.close()
    frames = rig.capture.frames
    assert any(b"o=- " in f and b"IN IP4 192.168.0.13" in f for f in frames)  # the SDP
    assert any(b"Content-Base: rtsp://192.168.0.13:554/cam/" in f for f in frames)
    # The browser's first question was QU: an answer came unicast, from the alias.
    assert any(_udp(f) == ("192.168.0.13", 5353, D4) for f in frames)
    assert leaks(frames) == []


def _udp(frame: bytes) -> tuple[str, int, str] | None:
    """(source, source port, destination) of a UDP/IPv4 frame."""
    if frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0xF) * 4
    src, dst = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
    return str(src), int.from_bytes(ip[ihl : ihl + 2], "big"), str(dst)
