"""One RTP/MPEG-TS stream through a function: relay core, next hops, local consumers.

Every streaming function moves datagrams the same way::

    datagram on the stream's RTP port ──▶ RelayCore ──FORWARD──▶ Fanout (next hops, RTP viewers)
                                            │                 └─▶ sinks (ffmpeg stdin: HLS,
                                            │                      transcoding, recording) and the
                                            │                      analyzer get the TS payload
                                            └──other verdicts──▶ counted (garbage, duplicate ...)
    datagram on RTP port + 1 (RTCP)  ──▶ RelayCore.receive_rtcp ──▶ Fanout (hops' port + 1)

A new source's probation datagrams (RFC 3550 A.1) come back in SourceValidated
and are sent before the datagram that validated it: ffmpeg's first datagram
carries the PAT, the PMT and the only key frame for a while.

The owner (a function) reads what happened with :meth:`RtpPath.take_events` and
:meth:`RtpPath.take_recognition`; nothing here reads a clock or owns a socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netfate.proto.mpegts import BitrateMeasured, ProgramRecognised, StreamAnalyzer
from netfate.proto.rtp import (
    PT_MP2T,
    RelayCore,
    RtpError,
    SourceValidated,
    Verdict,
    is_rtcp,
    payload_bounds,
)
from netfate.proto.rtp.events import Event as RtpEvent

from .net import Fanout, UdpPort, port_pair

Sink = Callable[[bytes], None]
"""A consumer of the stream's TS payloads (one RTP payload per call)."""


@dataclass(frozen=True)
class RelaySettings:
    """The RelayCore options a function exposes in its configuration."""

    source_timeout: float = 10.0
    takeover_after: float = 1.0

    def core(self) -> RelayCore:
        # Single source: one provider (or one upstream relay) per stream; a restarted
        # encoder (new SSRC) takes over after `takeover_after` s of silence of the old.
        return RelayCore(
            payload_types={PT_MP2T},
            single_source=True,
            source_timeout=self.source_timeout,
            takeover_after=self.takeover_after,
            rtcp_mux=True,
        )


class RtpPath:
    """Forward/drop, fan-out and local delivery of one stream."""

    def __init__(
        self,
        fanout: Fanout,
        settings: RelaySettings = RelaySettings(),
        *,
        analyze: bool = False,
        sources: frozenset[str] | None = None,
    ) -> None:
        self.fanout = fanout
        self.settings = settings
        self.relay = settings.core()
        self.analyzer: StreamAnalyzer | None = StreamAnalyzer() if analyze else None
        self.sources = sources
        """Senders allowed (None: any); others are counted as ``foreign`` and dropped."""
        self.sinks: dict[str, Sink] = {}
        self.foreign = 0
        self.last_sender: str | None = None
        self.programme: ProgramRecognised | None = None
        self.bitrate: dict[str, float] = {}
        self._events: list[RtpEvent] = []
        self._recognised: list[ProgramRecognised | BitrateMeasured] = []

    # ----- data path ---------------------------------------------------------------

    def on_rtp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if self.sources is not None and addr[0] not in self.sources:
            self.foreign += 1
            return
        verdict = self.relay.receive(data, now)
        events = self.relay.events()
        if events:
            self._events += events
            for ev in events:
                if isinstance(ev, SourceValidated):
                    for held in ev.held:
                        self._deliver(held, now)
        if verdict is Verdict.FORWARD:
            self.last_sender = addr[0]
            if is_rtcp(data):
                self.fanout.send(data)  # RTCP multiplexed on the RTP port (RFC 5761)
            else:
                self._deliver(data, now)

    def on_rtcp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if self.sources is not None and addr[0] not in self.sources:
            self.foreign += 1
            return
        if self.relay.receive_rtcp(data, now) is Verdict.FORWARD:
            self.fanout.send(data, rtcp=True)
        self._events += self.relay.events()

    def _deliver(self, data: bytes, now: float) -> None:
        self.fanout.send(data)
        if not self.sinks and self.analyzer is None:
            return
        try:
            start, end = payload_bounds(data)
        except RtpError:  # the relay core validated it; kept for safety
            return
        payload = data[start:end]
        for sink in self.sinks.values():
            sink(payload)
        if self.analyzer is not None:
            for ev in self.analyzer.receive_datagram(payload, now):
                if isinstance(ev, ProgramRecognised):
                    self.programme = ev
                    self._recognised.append(ev)
                elif isinstance(ev, BitrateMeasured):
                    first = ev.basis not in self.bitrate
                    self.bitrate[ev.basis] = ev.bits_per_second
                    if first:
                        self._recognised.append(ev)

    # ----- what happened -----------------------------------------------------------

    def poll(self, now: float) -> None:
        """Time out silent sources (their events join the pending ones)."""
        self._events += self.relay.poll(now)

    def take_events(self) -> list[RtpEvent]:
        out, self._events = self._events, []
        return out

    def take_recognition(self) -> list[ProgramRecognised | BitrateMeasured]:
        out, self._recognised = self._recognised, []
        return out

    def reset_analysis(self) -> None:
        """A new source: recognise its stream afresh."""
        if self.analyzer is not None:
            self.analyzer = StreamAnalyzer()
            self.programme = None
            self.bitrate = {}

    def stats(self, now: float) -> dict[str, Any]:
        figs = self.relay.figures(now)
        active = figs[0] if figs and figs[0].active else None
        out: dict[str, Any] = {
            "counters": self.relay.counters(),
            "foreign": self.foreign,
            "hops": self.fanout.stats(),
            "source": None,
        }
        if active is not None:
            out["source"] = {
                "ssrc": active.ssrc,
                "address": self.last_sender,
                "packets": active.packets,
                "lost": active.lost,
                "duplicates": active.duplicates,
                "reordered": active.reordered,
                "jitter_ms": None if active.jitter_s is None else round(active.jitter_s * 1e3, 3),
                "bitrate_bps": round(active.bitrate_bps),
                "idle_s": round(now - active.last_seen, 3),
            }
        if self.analyzer is not None:
            out["analyzer"] = self.analyzer.counters()
        return out


def internal_input(path: RtpPath) -> tuple[list[UdpPort], int]:
    """Ports on 127.0.0.1 where an ffmpeg child sends RTP/MPEG-TS (and RTCP to the
    next port) into `path`: the opened ports, and the RTP port to give ffmpeg."""
    rtp, rtcp = port_pair()
    ports = []
    for sock, handler in ((rtp, path.on_rtp), (rtcp, path.on_rtcp)):
        p = UdpPort("127.0.0.1", sock.getsockname()[1], handler)
        p.open(sock)
        ports.append(p)
    return ports, ports[0].port


def describe(programme: ProgramRecognised) -> tuple[dict[str, Any], ...]:
    """The programme's streams as plain objects (events, stats, JSON)."""
    out = []
    for s in programme.streams:
        d: dict[str, Any] = {"kind": s.kind, "codec": s.codec, "pid": s.pid}
        if s.language:
            d["language"] = s.language
        if s.video is not None:
            d.update(
                width=s.video.width,
                height=s.video.height,
                profile=s.video.profile,
                level=s.video.level,
                frame_rate=s.video.frame_rate,
            )
        if s.audio is not None:
            d.update(sample_rate=s.audio.sample_rate, channels=s.audio.channels)
            if s.audio.profile:
                d["profile"] = s.audio.profile
        out.append(d)
    return tuple(out)
