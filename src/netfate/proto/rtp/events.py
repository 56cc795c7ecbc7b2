"""Events the RTP relay core reports: past-tense, one docstring per field (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """Base of everything :class:`~netfate.proto.rtp.relay.RelayCore` reports."""


@dataclass(frozen=True)
class SourceValidated(Event):
    """A new SSRC passed probation (RFC 3550 A.1): its packets now count."""

    ssrc: int
    """The source."""
    payload_type: int
    """The payload type of the packet that validated it."""
    at: float
    """``now`` of that packet."""
    held: tuple[bytes, ...] = ()
    """Its datagrams held during probation, oldest first, when it is forwarded: send
    them before the one that validated it (empty when it is not forwarded)."""


@dataclass(frozen=True)
class ActiveSourceChanged(Event):
    """A single-source relay now forwards another SSRC (a sender restarted or took over
    after the previous one fell silent)."""

    previous: int | None
    """The SSRC forwarded until now; None for the first source."""
    ssrc: int
    """The SSRC forwarded from now on."""
    at: float
    """``now`` of the switch."""


@dataclass(frozen=True)
class SourceRestarted(Event):
    """The sequence numbers of a source jumped and the next packet confirmed the jump:
    the sender restarted without a new SSRC (A.1); loss counting starts again there."""

    ssrc: int
    """The source."""
    sequence: int
    """The sequence number counting resumed at."""
    at: float
    """``now`` of that packet."""


@dataclass(frozen=True)
class SourceTimedOut(Event):
    """A source sent nothing for the relay's ``source_timeout``; its state is gone."""

    ssrc: int
    """The source."""
    last_seen: float
    """``now`` of its last packet."""
    was_active: bool
    """It was the source being forwarded."""


@dataclass(frozen=True)
class SourceLeft(Event):
    """An RTCP BYE named the source (RFC 3550 6.6); its state is gone."""

    ssrc: int
    """The source."""
    reason: str
    """The reason text it gave (may be empty)."""
    was_active: bool
    """It was the source being forwarded."""


@dataclass(frozen=True)
class SenderReported(Event):
    """An RTCP sender report arrived from a known source."""

    ssrc: int
    """The sender."""
    ntp_time: float
    """Its wallclock at the report, as Unix time."""
    rtp_timestamp: int
    """The same instant in RTP timestamp units (maps media time to wallclock)."""
    packet_count: int
    """Packets the sender says it sent (compare with what arrived)."""
    octet_count: int
    """Payload octets the sender says it sent."""
