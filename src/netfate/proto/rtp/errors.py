"""The one exception type of the RTP/RTCP core (DESIGN.md, convention 3)."""

from __future__ import annotations


class RtpError(ValueError):
    """Bytes that are not a well-formed RTP or RTCP packet (RFC 3550), or a local
    call that would build one.

    Every parser and builder in this package raises only this type; ``reason`` is a
    short machine-readable word, used as a drop counter key by the relay core.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
