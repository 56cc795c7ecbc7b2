"""The one exception type of the IPv4 core (DESIGN.md, convention 3)."""

from __future__ import annotations


class IPv4Error(ValueError):
    """Bytes that are not a well-formed IPv4 packet (or a rewrite that cannot apply).

    Every parser in this package raises only this type on bad input; `reason` is a
    short machine-readable word used as a drop counter key.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
