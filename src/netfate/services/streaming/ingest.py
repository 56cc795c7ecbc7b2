"""How a provider sends its stream to the acquirer: the ingest protocols the front-end
offers, each flow's secret, and the exact URL and ffmpeg command line the
provider's tools take (OBS, ffmpeg).

- ``rtp-udp``: RTP/MPEG-TS over UDP (the paper's); the port is the flow's, RTCP on
  the next; no secret (the provider's ``source`` address, when given, is the check).
- ``srt``: SRT in caller mode to the flow's port; the stream is encrypted with the
  flow's passphrase (the acquirer's ffmpeg refuses another: libsrt's BADSECRET).
- ``rtmp``: RTMP to ``rtmp://ADDR:PORT/live`` with the flow's stream key (the
  acquirer's proxy reads the publish command and refuses another key).

Secrets are made per flow when the event starts, kept in the content's row, given
to the acquirer write-only (its configuration's keys are secret keys) and shown
only to the provider that owns the event (``GET /events/{eid}/ingest``).
"""

from __future__ import annotations

import secrets
import shlex
import urllib.parse
from typing import Any, Literal

Protocol = Literal["rtp-udp", "srt", "rtmp"]
PROTOCOLS: tuple[Protocol, ...] = ("rtp-udp", "srt", "rtmp")
ACQUIRER_PROTOCOL = {"rtp-udp": "rtp", "srt": "srt", "rtmp": "rtmp"}
"""The acquirer's name for each (its flow's ``protocol``)."""
SECRET_BYTES = 24
"""32 URL-safe characters: within SRT's 10..79 and safe in a URL or an OBS field."""
RTMP_APP = "live"


def new_secret(protocol: str) -> str | None:
    """A fresh passphrase (SRT) or stream key (RTMP); RTP has none."""
    return secrets.token_urlsafe(SECRET_BYTES) if protocol in ("srt", "rtmp") else None


def flow_secrets(protocol: str, secret: str | None) -> dict[str, Any]:
    """The acquirer flow's secret fields (write-only in its configuration)."""
    if secret is None:
        return {}
    return {"passphrase": secret} if protocol == "srt" else {"stream_secret": secret}


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def url(protocol: str, address: str, port: int, stream: str, secret: str | None) -> str:
    """The URL the provider's tool sends to (the secret in it: the provider's only)."""
    host = f"{_host(address)}:{port}"
    if protocol == "srt":
        q = {"streamid": stream, **({"passphrase": secret} if secret else {})}
        return f"srt://{host}?{urllib.parse.urlencode(q)}"
    if protocol == "rtmp":
        return f"rtmp://{host}/{RTMP_APP}/{urllib.parse.quote(secret or '', safe='')}"
    return f"rtp://{host}?pkt_size=1316"


def ffmpeg_command(protocol: str, target: str) -> str:
    """An ffmpeg command line sending a file (or a camera: replace the input) there."""
    fmt = {"srt": "mpegts", "rtmp": "flv"}.get(protocol, "rtp_mpegts")
    args = ["ffmpeg", "-re", "-i", "INPUT", "-c:v", "libx264", "-preset", "veryfast",
            "-tune", "zerolatency", "-g", "50", "-c:a", "aac", "-f", fmt, target]  # fmt: skip
    return shlex.join(args)


def instructions(
    protocol: str, address: str | None, port: int, stream: str, secret: str | None
) -> dict[str, Any]:
    """What the provider's page shows: the URL, the ffmpeg command line and OBS's
    fields (none until the acquirer has an address)."""
    out: dict[str, Any] = {"protocol": protocol, "address": address, "port": port}
    if address is None:
        return {**out, "url": None, "ffmpeg": None, "obs": None}
    target = url(protocol, address, port, stream, secret)
    obs: dict[str, Any] | None = None
    if protocol == "rtmp":
        obs = {"server": f"rtmp://{_host(address)}:{port}/{RTMP_APP}", "stream_key": secret}
    elif protocol == "srt":
        obs = {"server": target, "stream_key": ""}
    return {**out, "url": target, "ffmpeg": ffmpeg_command(protocol, target), "obs": obs}
