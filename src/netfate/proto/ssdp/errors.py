"""The one exception type of the discovery ALG parsers (DESIGN.md, convention 3)."""

from __future__ import annotations


class AlgError(ValueError):
    """A payload the ALG cannot parse; the caller passes it through untouched or drops it."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
