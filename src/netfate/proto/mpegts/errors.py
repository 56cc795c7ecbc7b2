"""The one exception type of the MPEG-TS core (DESIGN.md, convention 3)."""

from __future__ import annotations


class MpegTsError(ValueError):
    """Bytes that are not a well-formed transport stream structure (ISO/IEC 13818-1:
    TS packet, adaptation field, PSI section, PES header) or elementary stream
    header (H.264 SPS, ADTS, MPEG audio, AC-3), or a local call that would build one.

    Every parser and builder in this package raises only this type; ``reason`` is a
    short machine-readable word, used as a counter key by the stream analyzer.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
