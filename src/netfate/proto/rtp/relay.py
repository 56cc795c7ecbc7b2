"""Sans-I/O RTP relay core: a datagram and ``now`` in, forward or drop out.

The acquirer and the forwarders of the streaming tree copy a provider's RTP
datagrams to their next hops. Before a copy goes out, this core decides::

    relay = RelayCore(payload_types={PT_MP2T})
    verdict = relay.receive(datagram, now)
    for event in relay.events():              # SourceValidated, ActiveSourceChanged, ...
        ...                                   # (SourceValidated.held: send those first)
    if verdict is Verdict.FORWARD:            # send to every next hop
        ...
    relay.poll(now)                           # now and then: silent sources time out
    relay.figures(now)                        # per-SSRC packets, loss, jitter, bitrate

``receive`` returns a :class:`Verdict` rather than a list of events because it
runs once per datagram and almost every datagram is an ordinary forward; the rare
events queue up for :meth:`RelayCore.events` (h11's ``next_event`` shape).

What is dropped, and why:

- bytes that are not RTP (or, multiplexed per RFC 5761, not valid compound RTCP):
  counted by reason, never raised;
- a payload type the relay was not configured for;
- a sequence jump not yet confirmed (RFC 3550 A.1: one packet at a sender's
  restart);
- exact duplicates (within 128 sequence numbers);
- in single-source mode (the default: one provider per acquirer port), packets of
  any SSRC but the one being forwarded. A new SSRC takes over when the forwarded
  one has been silent for ``takeover_after`` seconds or said BYE, so a provider
  that restarts its encoder (new SSRC) continues the same event.

A new source's first packets (``min_sequential - 1`` of them) arrive while it is
on probation (A.1). They are held, not dropped: the first packet of a stream
carries its PAT, PMT and first key frame, which the analyzer and the viewers
need. When the source validates and is forwarded, :class:`SourceValidated`
hands them back (``held``) to be sent before the datagram that validated it;
if it never validates, they are discarded with it.

State is bounded: at most ``max_sources`` SSRCs are tracked, each holding at most
``min_sequential - 1`` datagrams; a flood of random SSRCs evicts only sources still
on probation, never a validated one.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .errors import RtpError
from .events import (
    ActiveSourceChanged,
    Event,
    SenderReported,
    SourceLeft,
    SourceRestarted,
    SourceTimedOut,
    SourceValidated,
)
from .packet import STATIC_CLOCK_RATES, is_rtcp, payload_bounds
from .receiver import MIN_SEQUENTIAL, Arrival, SourceState
from .rtcp import (
    Goodbye,
    ReceiverReport,
    SdesChunk,
    SdesType,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_to_unix,
    parse_rtcp,
)

_TS_SSRC = struct.Struct("!II")


class Verdict(enum.Enum):
    """The relay's decision about one datagram."""

    FORWARD = "forward"
    """Send it on to every next hop."""
    GARBAGE = "garbage"
    """Not an RTP packet (or not valid RTCP): see ``garbage_reasons``."""
    PAYLOAD_TYPE = "payload_type"
    """RTP with a payload type the relay does not carry."""
    PROBATION = "probation"
    """A new source not yet validated (RFC 3550 A.1): held, see SourceValidated."""
    SEQUENCE_JUMP = "sequence_jump"
    """A sequence jump waiting for a confirming packet (RFC 3550 A.1)."""
    DUPLICATE = "duplicate"
    """A sequence number already forwarded."""
    OTHER_SOURCE = "other_source"
    """Single-source mode: not the SSRC being forwarded."""
    TOO_MANY_SOURCES = "too_many_sources"
    """A new SSRC while ``max_sources`` validated ones are tracked."""


@dataclass(frozen=True)
class StreamFigures:
    """A snapshot of one validated source, as the relay saw it."""

    ssrc: int
    """The source."""
    payload_type: int
    """Payload type of its latest packet."""
    active: bool
    """It is the source being forwarded (always True in multi-source mode)."""
    packets: int
    """Valid packets received (duplicates and probation excluded)."""
    octets: int
    """Payload octets of those packets."""
    expected: int
    """Packets expected from the sequence numbers since the last (re)start (A.3)."""
    lost: int
    """Expected minus received since the last (re)start (A.3)."""
    reordered: int
    """Packets that arrived behind a later one."""
    duplicates: int
    """Packets dropped as duplicates."""
    restarts: int
    """Sequence re-syncs (A.1)."""
    jitter_s: float | None
    """Interarrival jitter (A.8) in seconds; None when the clock rate is unknown."""
    bitrate_bps: float
    """Payload bitrate over the last complete window (0 when silent that long)."""
    first_seen: float
    """``now`` of its first packet."""
    last_seen: float
    """``now`` of its latest packet."""
    sender_packets: int | None
    """Packet count of its latest RTCP SR, if any."""
    sender_octets: int | None
    """Octet count of its latest RTCP SR, if any."""


class RelayCore:
    """Forward/drop decisions and per-SSRC figures for one relayed RTP session."""

    def __init__(
        self,
        *,
        payload_types: Collection[int] | None = None,
        clock_rates: Mapping[int, int] | None = None,
        single_source: bool = True,
        min_sequential: int = MIN_SEQUENTIAL,
        takeover_after: float = 1.0,
        source_timeout: float = 10.0,
        max_sources: int = 16,
        rtcp_mux: bool = True,
        reduced_size_rtcp: bool = False,
        drop_duplicates: bool = True,
        rate_window: float = 1.0,
    ) -> None:
        self.payload_types = frozenset(payload_types) if payload_types is not None else None
        self.clock_rates = {**STATIC_CLOCK_RATES, **(clock_rates or {})}
        self.single_source = single_source
        self.min_sequential = min_sequential
        self.takeover_after = takeover_after
        self.source_timeout = source_timeout
        self.max_sources = max_sources
        self.rtcp_mux = rtcp_mux
        self.reduced_size_rtcp = reduced_size_rtcp
        self.drop_duplicates = drop_duplicates
        self.rate_window = rate_window
        self.sources: dict[int, SourceState] = {}
        self.active: int | None = None
        self._sr: dict[int, SenderReport] = {}
        self._held: dict[int, list[bytes]] = {}
        self._events: list[Event] = []
        self.datagrams = 0
        self.forwarded = 0
        self.forwarded_octets = 0
        self.rtcp_forwarded = 0
        self.dropped: dict[Verdict, int] = {v: 0 for v in Verdict if v is not Verdict.FORWARD}
        self.garbage_reasons: dict[str, int] = {}

    # ----- data path ----------------------------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview, now: float) -> Verdict:
        """Decide about one datagram from the RTP port (RTCP too, when multiplexed)."""
        self.datagrams += 1
        if self.rtcp_mux and is_rtcp(data):
            return self._rtcp(data, now)
        try:
            start, end = payload_bounds(data)
        except RtpError as e:
            return self._garbage(e.reason)
        pt = data[1] & 0x7F
        if self.payload_types is not None and pt not in self.payload_types:
            return self._drop(Verdict.PAYLOAD_TYPE)
        seq = data[2] << 8 | data[3]
        ts, ssrc = _TS_SSRC.unpack_from(data, 4)
        src = self.sources.get(ssrc)
        if src is None:
            src = self._new_source(ssrc, seq, pt, now)
            if src is None:
                return self._drop(Verdict.TOO_MANY_SOURCES)
        src.payload_type = pt
        was_valid = src.probation == 0
        arrival = src.update(seq, ts, now, end - start)
        if arrival >= Arrival.PROBATION:
            if arrival == Arrival.PROBATION:
                self._hold(src, data)
                return self._drop(Verdict.PROBATION)
            if arrival == Arrival.JUMPED:
                return self._drop(Verdict.SEQUENCE_JUMP)
            if self.drop_duplicates:
                return self._drop(Verdict.DUPLICATE)
        switch = self.single_source and self.active != ssrc and self._may_take_over(now)
        forward = not self.single_source or self.active == ssrc or switch
        if not was_valid:
            held = self._held.pop(ssrc, [])
            self._events.append(SourceValidated(ssrc, pt, now, tuple(held) if forward else ()))
        elif arrival == Arrival.RESTARTED:
            self._events.append(SourceRestarted(ssrc, seq, now))
        if switch:
            self._events.append(ActiveSourceChanged(self.active, ssrc, now))
            self.active = ssrc
        if not forward:
            return self._drop(Verdict.OTHER_SOURCE)
        self.forwarded += 1
        self.forwarded_octets += len(data)
        return Verdict.FORWARD

    def _hold(self, src: SourceState, data: bytes | bytearray | memoryview) -> None:
        """Keep the current in-sequence probation run (A.1 restarts it out of sequence)."""
        if src.probation == self.min_sequential - 1:
            self._held[src.ssrc] = [bytes(data)]
        else:
            self._held.setdefault(src.ssrc, []).append(bytes(data))

    def receive_rtcp(self, data: bytes | bytearray | memoryview, now: float) -> Verdict:
        """Decide about one datagram from the RTCP port (or a multiplexed RTCP one)."""
        self.datagrams += 1
        return self._rtcp(data, now)

    def _rtcp(self, data: bytes | bytearray | memoryview, now: float) -> Verdict:
        try:
            packets = parse_rtcp(data, reduced_size=self.reduced_size_rtcp)
        except RtpError as e:
            return self._garbage("rtcp_" + e.reason)
        if self.single_source and self.active is not None:
            for p in packets:
                named: tuple[int, ...] = ()
                if isinstance(p, SenderReport | ReceiverReport):
                    named = (p.ssrc,)
                elif isinstance(p, Goodbye):
                    named = p.ssrcs
                if any(s != self.active for s in named):
                    return self._drop(Verdict.OTHER_SOURCE)
        for p in packets:
            if isinstance(p, SenderReport) and p.ssrc in self.sources:
                self.sources[p.ssrc].sender_report(p.ntp_timestamp, now)
                self._sr[p.ssrc] = p
                self._events.append(
                    SenderReported(
                        p.ssrc,
                        ntp_to_unix(p.ntp_timestamp),
                        p.rtp_timestamp,
                        p.packet_count,
                        p.octet_count,
                    )
                )
            elif isinstance(p, Goodbye):
                reason = p.reason.decode("utf-8", "replace")
                for ssrc in p.ssrcs:
                    if ssrc in self.sources:
                        self._forget(ssrc)
                        self._events.append(SourceLeft(ssrc, reason, ssrc == self.active))
                        if ssrc == self.active:
                            self.active = None
        self.rtcp_forwarded += 1
        self.forwarded_octets += len(data)
        return Verdict.FORWARD

    def _garbage(self, reason: str) -> Verdict:
        self.garbage_reasons[reason] = self.garbage_reasons.get(reason, 0) + 1
        return self._drop(Verdict.GARBAGE)

    def _drop(self, verdict: Verdict) -> Verdict:
        self.dropped[verdict] += 1
        return verdict

    def _new_source(self, ssrc: int, seq: int, pt: int, now: float) -> SourceState | None:
        if len(self.sources) >= self.max_sources:
            on_probation = [s for s in self.sources.values() if s.probation]
            if not on_probation:
                return None
            self._forget(min(on_probation, key=lambda s: s.last_seen).ssrc)
        src = SourceState(
            ssrc,
            seq,
            now,
            payload_type=pt,
            clock_rate=self.clock_rates.get(pt, 0),
            min_sequential=self.min_sequential,
            rate_window=self.rate_window,
        )
        self.sources[ssrc] = src
        return src

    def _may_take_over(self, now: float) -> bool:
        """Whether another validated source may become the forwarded one now."""
        current = self.sources.get(self.active) if self.active is not None else None
        return current is None or now - current.last_seen >= self.takeover_after

    def _forget(self, ssrc: int) -> None:
        self.sources.pop(ssrc, None)
        self._sr.pop(ssrc, None)
        self._held.pop(ssrc, None)

    # ----- housekeeping -------------------------------------------------------------

    def events(self) -> list[Event]:
        """Events since the last call (oldest first)."""
        out, self._events = self._events, []
        return out

    def poll(self, now: float) -> list[Event]:
        """Time out sources silent for ``source_timeout``; return all pending events."""
        for src in list(self.sources.values()):
            if now - src.last_seen >= self.source_timeout:
                self._forget(src.ssrc)
                if src.valid:
                    was_active = src.ssrc == self.active
                    self._events.append(SourceTimedOut(src.ssrc, src.last_seen, was_active))
                    if was_active:
                        self.active = None
        return self.events()

    def figures(self, now: float) -> tuple[StreamFigures, ...]:
        """Per-source figures of every validated source, forwarded one first."""
        out = []
        for src in self.sources.values():
            if not src.valid:
                continue
            sr = self._sr.get(src.ssrc)
            out.append(
                StreamFigures(
                    ssrc=src.ssrc,
                    payload_type=src.payload_type,
                    active=not self.single_source or src.ssrc == self.active,
                    packets=src.packets,
                    octets=src.octets,
                    expected=src.expected,
                    lost=src.lost,
                    reordered=src.reordered,
                    duplicates=src.duplicates,
                    restarts=src.restarts,
                    jitter_s=src.jitter_seconds,
                    bitrate_bps=src.rate_bps(now),
                    first_seen=src.first_seen,
                    last_seen=src.last_seen,
                    sender_packets=sr.packet_count if sr else None,
                    sender_octets=sr.octet_count if sr else None,
                )
            )
        out.sort(key=lambda f: not f.active)
        return tuple(out)

    def counters(self) -> dict[str, int]:
        """Datagram counts: received, forwarded, and dropped by verdict and garbage reason."""
        out = {
            "datagrams": self.datagrams,
            "forwarded": self.forwarded,
            "rtcp_forwarded": self.rtcp_forwarded,
            "forwarded_octets": self.forwarded_octets,
        }
        out.update({f"dropped_{v.value}": n for v, n in self.dropped.items()})
        out.update({f"garbage_{r}": n for r, n in self.garbage_reasons.items()})
        return out

    def receiver_report(self, reporter_ssrc: int, cname: bytes, now: float) -> bytes:
        """A compound RR + SDES(CNAME) about every validated source (RFC 3550 6.1)."""
        blocks = tuple(s.report_block(now) for s in self.sources.values() if s.valid)[:31]
        return build_compound(
            [
                ReceiverReport(reporter_ssrc, blocks),
                SourceDescription((SdesChunk(reporter_ssrc, ((SdesType.CNAME, cname),)),)),
            ]
        )
