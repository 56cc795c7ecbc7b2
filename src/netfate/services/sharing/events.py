"""Events of the sharing service, past tense (DESIGN.md convention 5)."""

from __future__ import annotations

from dataclasses import dataclass

from netfate.model.events import Event


@dataclass(frozen=True)
class PersonalNetworkCreated(Event):
    email: str
    """The owner's email: the PN's id."""
    node: str
    """The edge node whose LAN is the PN."""
    subnet: str
    """The PN's subnet."""


@dataclass(frozen=True)
class ShareStateChanged(Event):
    share: int
    """The share request's id."""
    owner: str
    """PN1 (exporting) owner's email."""
    recipient: str
    """PN2 (importing) owner's email."""
    device: str
    """The shared device's name in PN1."""
    previous: str | None
    """State before (None for a new request)."""
    state: str
    """State after."""
    reason: str
    """Why, in words."""


@dataclass(frozen=True)
class SharePortsLearned(Event):
    share: int
    """The share request's id."""
    owner: str
    recipient: str
    device: str
    learned: list[int]
    """Every port of the device VP1 learned so far."""
    proxied: list[int]
    """The ports VP1 proxies for the device now."""
