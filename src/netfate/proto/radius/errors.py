"""The one exception type of the RADIUS core (DESIGN.md, convention 3)."""

from __future__ import annotations


class RadiusError(Exception):
    """Bytes from a peer (or a local call) that the RADIUS core refuses.

    Everything a parser, verifier or state machine of this package rejects raises
    this type and only this type, so a driver has one thing to catch and a fuzz
    test one thing to allow.
    """
