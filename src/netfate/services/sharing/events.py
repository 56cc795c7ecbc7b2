"""Events of the sharing service, past tense (DESIGN.md convention 5)."""

from __future__ import annotations

from dataclasses import dataclass

from netfate.model.events import Event


@dataclass(frozen=True)
class PersonalNetworkCreated(Event):
    email: str
    """The owner's account name (an email, or any other): the PN's id."""
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


@dataclass(frozen=True)
class GatewaySettingsChanged(Event):
    pn: str
    """The PN (its owner's email) whose gateway settings changed."""
    by: str
    """Who changed them (the owner, or the operator)."""
    dhcp: list[str]
    """The DHCP pool now: its first and last address."""
    lease_seconds: int
    """The DHCP lease time now."""
    forwards: int
    """How many port forwards there are now."""
    allow: int
    """How many firewall allow rules there are now."""
    vhg: str | None
    """The vHG instance reconfigured with them (None: the PN has no live vHG)."""
