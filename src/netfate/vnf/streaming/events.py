"""What the streaming functions tell the back-end.

Events are past-tense dataclasses (DESIGN.md §5). A function hands one to its
``emit`` hook (``netfate.vnf.runtime.Function.emit``); the platform's outbox
(``netfate.vnf.outbox``) numbers it, the function's ``status`` stats show it
(``stats["events"]``: ``last_seq``, ``dropped`` and the retained items, oldest
first), its agent's report carries it, and the orchestrator hands each new one
to the streaming service (``Service.on_instance_event``).

Times in events are wall-clock Unix seconds (they leave the machine); the
functions' internal clocks are monotonic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netfate.vnf.outbox import OUTBOX_LIMIT, Outbox

__all__ = ["OUTBOX_LIMIT", "Event", "Outbox"]


@dataclass(frozen=True)
class Event:
    """Base of every streaming function event."""


@dataclass(frozen=True)
class StreamStarted(Event):
    """An armed flow's first valid packets arrived and are being forwarded."""

    flow: str
    """The acquirer flow."""
    event: str | None
    """The scheduled event it is armed for."""
    transport: str
    """``rtp``, ``srt`` or ``rtmp``: what the provider sends."""
    source: str | None
    """The provider's address (None when ffmpeg terminates the protocol and did not say)."""
    ssrc: int
    """The RTP SSRC forwarded (for SRT/RTMP: the acquirer's internal remux)."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class StreamRecognised(Event):
    """The acquirer recognised what a flow carries (the paper's "recognizing the media
    streams; notifying the Back-end about the upcoming transmissions")."""

    flow: str
    """The acquirer flow."""
    event: str | None
    """The scheduled event."""
    container: str
    """``mpegts``."""
    streams: tuple[dict[str, Any], ...]
    """One object per elementary stream: ``kind``, ``codec``, ``pid`` and, where read,
    ``width``, ``height``, ``frame_rate``, ``profile``, ``level``, ``sample_rate``,
    ``channels``."""
    complete: bool
    """Every stream's parameters were read (False: recognition timed out for some)."""
    bitrate_bps: float | None
    """Transport bitrate by the programme clock, when measured already."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class StreamMeasured(Event):
    """A flow's first bitrate measurement by the programme clock (after recognition)."""

    flow: str
    """The acquirer flow."""
    event: str | None
    """The scheduled event."""
    bitrate_bps: float
    """Transport bitrate as multiplexed (PCR-based)."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class StreamStopped(Event):
    """A flow's stream ended."""

    flow: str
    """The acquirer flow."""
    event: str | None
    """The scheduled event."""
    reason: str
    """``timeout`` (silent for the source timeout), ``bye`` (RTCP BYE), ``disarmed``
    (the configuration took the flow's event away) or ``removed``."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class StreamRefused(Event):
    """Packets or a connection were refused. Emitted once per episode (a sender, a
    port, a reason), again only after the episode was quiet for a while; the counts
    in the stats include every refused datagram."""

    port: int
    """The port they arrived on."""
    transport: str
    """``udp`` or ``tcp``."""
    source: str
    """The sender's address."""
    reason: str
    """``wrong_port``, ``no_event``, ``event_ended``, ``outside_window``,
    ``wrong_source``, ``wrong_protocol`` or ``busy``."""
    detail: str
    """A sentence for the provider (e.g. which port their event is on)."""
    flow: str | None
    """The flow owning that port, if any."""
    event: str | None
    """Its event, if any."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class ViewerJoined(Event):
    """An edge streamer started sending a stream to an RTP viewer."""

    content: str
    """The content."""
    rendition: str
    """``source`` or a configured rendition name."""
    viewer: str
    """``host:port``."""
    via: str
    """``join`` (the HTTP endpoint) or ``config``."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class ViewerLeft(Event):
    """An edge streamer stopped sending to an RTP viewer."""

    content: str
    """The content."""
    rendition: str
    """``source`` or a rendition name."""
    viewer: str
    """``host:port``."""
    reason: str
    """``left`` (asked to), ``lease_expired`` or ``removed`` (by configuration)."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class RecordingStarted(Event):
    """The storage function began (or, after a restart or migration, resumed) writing."""

    recording: str
    """The recording id."""
    user: str
    """Whose it is."""
    content: str
    """What is recorded."""
    resumed: bool
    """True: a later run of a recording begun earlier (a discontinuity in the VoD)."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class RecordingStopped(Event):
    """A recording stopped writing; what it holds is playable as VoD."""

    recording: str
    """The recording id."""
    user: str
    """Whose it is."""
    reason: str
    """``requested``, ``quota`` (the user's quota was reached), ``refused`` (no room
    for even a start) or ``failed`` (the segmenter kept failing)."""
    duration_s: float
    """Seconds of media held."""
    octets: int
    """Bytes on the volume."""
    at: float
    """Wall-clock time."""


@dataclass(frozen=True)
class HelperFailed(Event):
    """An ffmpeg child exited unexpectedly (it is restarted after a back-off)."""

    role: str
    """What it did: ``ingest:FLOW``, ``hls:CONTENT/RENDITION``, ``transcode:...``,
    ``record:RECORDING``."""
    returncode: int | None
    """Its exit status (negative: killed by that signal)."""
    detail: str
    """The last line of its error output."""
    at: float
    """Wall-clock time."""
