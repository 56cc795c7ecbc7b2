"""The one exception type of the DNS message codec (DESIGN.md, convention 3)."""

from __future__ import annotations


class DnsError(ValueError):
    """Bytes that are not a well-formed DNS message (RFC 1035 section 4), or a message
    that cannot be built; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
