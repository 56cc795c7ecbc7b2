"""What the streaming functions tell the back-end, and the hook they tell it through.

Events are past-tense dataclasses (DESIGN.md §5). A function hands one to
:meth:`Outbox.emit` (its ``emit`` hook); the outbox numbers it and keeps the
latest :data:`OUTBOX_LIMIT`. Today the orchestrator reads them from the
function's ``status`` stats (``stats["events"]``: ``last_seq``, ``dropped`` and
the retained items, oldest first), which every agent report already carries;
a consumer remembers the last ``seq`` it handled and sees a gap as
``first_seq > its last + 1``. When the platform can carry events itself (an
``events`` control op the agent drains and posts), the same outbox is what it
drains: the functions need not change.

Times in events are wall-clock Unix seconds (they leave the machine); the
functions' internal clocks are monotonic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

OUTBOX_LIMIT = 256


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


@dataclass
class Outbox:
    """The ``emit`` hook's queue: numbered events, the latest ``limit`` kept."""

    limit: int = OUTBOX_LIMIT
    last_seq: int = 0
    dropped: int = 0
    """Events pushed out of the window before anyone could read them (a lower bound
    of what a slow reader missed)."""
    items: deque[dict[str, Any]] = field(default_factory=deque)

    def emit(self, event: Event) -> int:
        """Record `event`; returns its sequence number."""
        self.last_seq += 1
        self.items.append({"seq": self.last_seq, "kind": type(event).__name__, **asdict(event)})
        while len(self.items) > self.limit:
            self.items.popleft()
            self.dropped += 1
        return self.last_seq

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Events numbered after `seq`, oldest first."""
        return [e for e in self.items if e["seq"] > seq]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.items if e["kind"] == kind]

    def snapshot(self) -> dict[str, Any]:
        """What ``status`` shows and ``export`` carries."""
        return {"last_seq": self.last_seq, "dropped": self.dropped, "items": list(self.items)}

    def restore(self, state: Any) -> None:
        """Continue a peer's numbering and keep its retained events (migration)."""
        if not isinstance(state, dict):
            return
        items = [e for e in state.get("items", ()) if isinstance(e, dict)][-self.limit :]
        last = state.get("last_seq", 0)
        if isinstance(last, int) and last >= self.last_seq:
            mine = list(self.items)
            self.items = deque(items)
            # Events this process emitted before the import follow the peer's.
            self.last_seq = last
            for e in mine:
                self.last_seq += 1
                self.items.append({**e, "seq": self.last_seq})
            while len(self.items) > self.limit:
                self.items.popleft()
            dropped = state.get("dropped", 0)
            self.dropped = int(dropped) if isinstance(dropped, int) else 0
