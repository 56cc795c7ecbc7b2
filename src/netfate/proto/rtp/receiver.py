"""What a receiver keeps about one RTP source (SSRC): RFC 3550 appendices A.1, A.3, A.8.

Sequence tracking follows A.1 literally: a new source is on probation until
``min_sequential`` packets arrive in sequence; a gap below ``MAX_DROPOUT`` is
accepted (a 16-bit wrap counts a cycle); a packet up to ``MAX_MISORDER`` behind is
late but valid; any other jump is dropped, unless the next packet follows it, in
which case the sender is taken to have restarted and the sequence re-syncs there.

Two additions to A.1: a 128-packet history tells a duplicate from a late packet
(A.1 counts both as received, which makes the loss figure negative), and the
counts a relay reports (packets, octets, reordered, duplicates, restarts) survive
a re-sync, while A.1's ``received``/``base_seq`` restart with the new sequence as
the RR figures must.

Jitter is A.8's estimator, J += (|D| - J) / 16, where D is the change in transit
time between consecutive arrivals, in RTP timestamp units: arrival times come
from the caller's ``now`` (seconds) times the payload's clock rate.
"""

from __future__ import annotations

import enum

from .rtcp import ReportBlock, ntp_middle32

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
HISTORY_BITS = 128
_HISTORY_MASK = (1 << HISTORY_BITS) - 1


class Arrival(enum.IntEnum):
    """What one packet did to the source's sequence state."""

    IN_ORDER = 0
    """Valid, at or after the highest sequence number so far (gaps allowed)."""
    LATE = 1
    """Valid, behind the highest sequence number (reordered), not seen before."""
    RESTARTED = 2
    """Valid, and the sequence re-synced here after a jump (A.1: the sender restarted)."""
    PROBATION = 3
    """The source is not yet validated (A.1): the packet is not counted."""
    JUMPED = 4
    """A jump beyond MAX_DROPOUT: dropped, pending a packet that confirms it."""
    DUPLICATE = 5
    """A sequence number already received within the last 128."""


VALID = (Arrival.IN_ORDER, Arrival.LATE, Arrival.RESTARTED)


class SourceState:
    """Reception state of one SSRC. Feed every packet of it to :meth:`update`."""

    __slots__ = (
        "_rate_octets",
        "_rate_start",
        "bad_seq",
        "base_seq",
        "bitrate",
        "clock_rate",
        "cycles",
        "duplicates",
        "expected_prior",
        "first_seen",
        "history",
        "jitter",
        "last_seen",
        "last_sr",
        "last_sr_at",
        "last_ts",
        "max_seq",
        "min_sequential",
        "octets",
        "packets",
        "payload_type",
        "probation",
        "rate_window",
        "received",
        "received_prior",
        "reordered",
        "restarts",
        "ssrc",
    )

    def __init__(
        self,
        ssrc: int,
        seq: int,
        now: float,
        *,
        payload_type: int = -1,
        clock_rate: int = 0,
        min_sequential: int = MIN_SEQUENTIAL,
        rate_window: float = 1.0,
    ) -> None:
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        """Payload clock in Hz; 0 when unknown (no jitter then)."""
        self.min_sequential = max(1, min_sequential)
        self.rate_window = rate_window
        self._init_seq(seq)
        self.max_seq = (seq - 1) & 0xFFFF
        self.probation = self.min_sequential
        self.first_seen = now
        self.last_seen = now
        self.last_ts: tuple[float, int] | None = None
        self.jitter = 0.0
        self.packets = 0
        self.octets = 0
        self.reordered = 0
        self.duplicates = 0
        self.restarts = 0
        self.last_sr = 0
        self.last_sr_at = 0.0
        self.bitrate = 0.0
        self._rate_start = now
        self._rate_octets = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1  # matches no sequence number
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.history = 1

    @property
    def valid(self) -> bool:
        return self.probation == 0

    def update(self, seq: int, timestamp: int, now: float, octets: int) -> Arrival:
        """Account one packet (sequence number, RTP timestamp, arrival, payload size)."""
        self.last_seen = now
        result = self._update_seq(seq)
        if result > Arrival.RESTARTED:
            return result
        self.packets += 1
        self.octets += octets
        if result == Arrival.LATE:
            self.reordered += 1
        elif result == Arrival.RESTARTED:
            self.restarts += 1
            self.last_ts = None
        if self.clock_rate:
            self._jitter(timestamp, now)
        if now - self._rate_start >= self.rate_window:
            self.bitrate = self._rate_octets * 8 / (now - self._rate_start)
            self._rate_start = now
            self._rate_octets = 0
        self._rate_octets += octets
        return result

    def _update_seq(self, seq: int) -> Arrival:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return Arrival.IN_ORDER
            else:
                # With min_sequential 1 the first packet validates, so this is >= 1.
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return Arrival.PROBATION
        if udelta == 0:
            self.duplicates += 1
            return Arrival.DUPLICATE
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self.history = (self.history << udelta | 1) & _HISTORY_MASK
            self.received += 1
            return Arrival.IN_ORDER
        if udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)
                self.received += 1
                return Arrival.RESTARTED
            self.bad_seq = (seq + 1) & 0xFFFF
            return Arrival.JUMPED
        back = RTP_SEQ_MOD - udelta  # 1..MAX_MISORDER behind the highest
        bit = 1 << back
        if self.history & bit:
            self.duplicates += 1
            return Arrival.DUPLICATE
        self.history |= bit
        self.received += 1
        return Arrival.LATE

    def _jitter(self, timestamp: int, now: float) -> None:
        last = self.last_ts
        self.last_ts = (now, timestamp)
        if last is None:
            return
        # D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}); S differences modulo 2^32.
        ds = (timestamp - last[1]) & 0xFFFFFFFF
        if ds >= 1 << 31:
            ds -= 1 << 32
        d = (now - last[0]) * self.clock_rate - ds
        self.jitter += (abs(d) - self.jitter) / 16.0

    # ----- figures (A.3) ------------------------------------------------------------

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.valid else 0

    @property
    def lost(self) -> int:
        """Expected minus received since the sequence (re)started (A.3)."""
        return self.expected - self.received if self.valid else 0

    @property
    def jitter_seconds(self) -> float | None:
        return self.jitter / self.clock_rate if self.clock_rate else None

    def rate_bps(self, now: float) -> float:
        """Bitrate of the last complete window; 0 once the source has been silent a window."""
        return self.bitrate if now - self.last_seen < self.rate_window else 0.0

    def sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Note an SR from this source (for the LSR/DLSR of the next report block)."""
        self.last_sr = ntp_middle32(ntp_timestamp)
        self.last_sr_at = now

    def report_block(self, now: float) -> ReportBlock:
        """The RR report block for this source; starts a new loss interval (A.3)."""
        expected = self.expected
        interval_expected = expected - self.expected_prior
        interval_received = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        interval_lost = interval_expected - interval_received
        fraction = 0
        if interval_expected > 0 and interval_lost > 0:
            fraction = min(255, (interval_lost << 8) // interval_expected)
        dlsr = 0
        if self.last_sr:
            dlsr = min(0xFFFFFFFF, int((now - self.last_sr_at) * 65536))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=min(0xFFFFFFFF, int(self.jitter)),
            last_sr=self.last_sr,
            delay_since_last_sr=dlsr,
        )
