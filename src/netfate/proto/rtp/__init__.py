"""Sans-I/O RTP and RTCP (RFC 3550), with RFC 8285 header extensions.

Wire formats: :func:`parse_rtp` / :meth:`RtpPacket.build`, :func:`parse_rtcp` /
:func:`build_compound`. Reception state per SSRC (A.1 sequence rules, A.3 loss,
A.8 jitter): :class:`SourceState`. The relay core the streaming tree's acquirer
and forwarders stand on: :class:`RelayCore` (datagram + ``now`` in, a
:class:`Verdict` out, events and per-stream figures on the side). Every refusal
of bytes is an :class:`RtpError`; the relay core counts it instead of raising.
"""

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
from .packet import (
    PT_MP2T,
    STATIC_CLOCK_RATES,
    ExtensionElement,
    HeaderExtension,
    RtpPacket,
    is_rtcp,
    parse_rtp,
    payload_bounds,
)
from .receiver import Arrival, SourceState
from .relay import RelayCore, StreamFigures, Verdict
from .rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpUnknown,
    SdesChunk,
    SdesType,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_to_unix,
    parse_rtcp,
    unix_to_ntp,
)

__all__ = [
    "PT_MP2T",
    "STATIC_CLOCK_RATES",
    "ActiveSourceChanged",
    "Arrival",
    "Event",
    "ExtensionElement",
    "Goodbye",
    "HeaderExtension",
    "ReceiverReport",
    "RelayCore",
    "ReportBlock",
    "RtcpPacket",
    "RtcpUnknown",
    "RtpError",
    "RtpPacket",
    "SdesChunk",
    "SdesType",
    "SenderReport",
    "SenderReported",
    "SourceDescription",
    "SourceLeft",
    "SourceRestarted",
    "SourceState",
    "SourceTimedOut",
    "SourceValidated",
    "StreamFigures",
    "Verdict",
    "build_compound",
    "is_rtcp",
    "ntp_to_unix",
    "parse_rtcp",
    "parse_rtp",
    "payload_bounds",
    "unix_to_ntp",
]
