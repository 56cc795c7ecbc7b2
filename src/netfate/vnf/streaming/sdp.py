"""The SDP (RFC 8866) an edge streamer gives an RTP viewer: one RTP/MPEG-TS stream.

::

    v=0
    o=- SESSION VERSION IN IP4 STREAMER-ADDRESS
    s=CONTENT (RENDITION)
    c=IN IP4 STREAMER-ADDRESS
    t=0 0
    m=video VIEWER-PORT RTP/AVP 33
    a=rtpmap:33 MP2T/90000          (RFC 3551: MPEG-2 TS, 90 kHz clock)
    a=recvonly

A unicast viewer (ffplay, ffprobe, VLC) opening it listens on VIEWER-PORT and
sends its RTCP receiver reports to the streamer's address, port + 1. The
connection address is the streamer's (the source), not the viewer's: with it,
the viewer knows where the stream comes from and where its reports go.
"""

from __future__ import annotations

import ipaddress
import re

from netfate.proto.rtp import PT_MP2T

_TEXT = re.compile(r"[^\x20-\x7e]")


def stream_sdp(
    streamer: str, viewer_port: int, content: str, rendition: str, session: int = 0
) -> str:
    ip = ipaddress.ip_address(streamer)
    family = "IP6" if ip.version == 6 else "IP4"
    name = _TEXT.sub("?", f"{content} ({rendition})")[:200]
    lines = [
        "v=0",
        f"o=- {session} 1 IN {family} {ip}",
        f"s={name}",
        f"c=IN {family} {ip}",
        "t=0 0",
        f"m=video {viewer_port} RTP/AVP {PT_MP2T}",
        f"a=rtpmap:{PT_MP2T} MP2T/90000",
        "a=recvonly",
    ]
    return "\r\n".join(lines) + "\r\n"
