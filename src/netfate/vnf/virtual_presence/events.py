"""What a Virtual Presence tells the sharing service (``Function.emit``, carried by
its agent's report to ``Service.on_instance_event``; netfate.vnf.outbox).

Times are wall-clock Unix seconds: they leave the machine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortsLearned:
    """VP1's ALG learned ports of the shared device (it announced them, or named them
    in URLs it served) and proxies them now."""

    learned: list[int]
    """Every port learned so far, sorted (not only the new ones: a handler that missed
    an event still ends up right)."""
    proxied: list[int]
    """The ports VP1 listens on for the device now (learned and configured)."""
    at: float
