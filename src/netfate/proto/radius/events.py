"""Events of the RADIUS cores: past-tense dataclasses (DESIGN.md, convention 5)."""

from __future__ import annotations

from dataclasses import dataclass

from netfate.proto.radius.packet import Packet

Address = tuple[str, int]


@dataclass(frozen=True)
class AccessRequested:
    """A client's Access-Request passed every check; the application decides."""

    request: Packet
    """The decoded request (attributes still in wire form)."""
    peer: Address
    """Where it came from and where the answer goes."""
    user: str
    """User-Name."""
    password: bytes
    """The revealed User-Password (PAP)."""


@dataclass(frozen=True)
class AccountingReceived:
    """A verified Accounting-Request; the core has already built the response."""

    request: Packet
    """The decoded request."""
    peer: Address
    """The NAS that sent it."""
    status: int
    """Acct-Status-Type (1 Start, 2 Stop, 3 Interim-Update)."""
    session_id: str
    """Acct-Session-Id."""
    user: str
    """User-Name, or "" when absent."""


@dataclass(frozen=True)
class PacketDropped:
    """A datagram was discarded silently, as RFC 2865 requires; the reason is for logs."""

    peer: Address
    """Where it came from."""
    reason: str
    """Why it was dropped (unknown client, bad Message-Authenticator, ...)."""


@dataclass(frozen=True)
class ResponseReceived:
    """The client core matched and verified a response to one of its requests."""

    identifier: int
    """The request's identifier."""
    tag: object
    """What the application attached to the request."""
    response: Packet
    """The verified response."""
    rtt: float
    """Seconds from the first transmission to this answer."""


@dataclass(frozen=True)
class RequestTimedOut:
    """No valid response after all retransmissions."""

    identifier: int
    """The request's identifier."""
    tag: object
    """What the application attached to the request."""


@dataclass(frozen=True)
class DisconnectRequested:
    """A verified RFC 5176 Disconnect-Request at the NAS; the application finds the
    sessions it names, ends them, and answers with DasCore.ack() or DasCore.nak()."""

    request: Packet
    """The decoded request (attributes still in wire form)."""
    peer: Address
    """The server that sent it, where the answer goes."""
    session_id: str | None
    """Acct-Session-Id, when present."""
    user: str | None
    """User-Name, when present."""
    framed_ip: str | None
    """Framed-IP-Address (dotted quad), when present."""
    calling_station: str | None
    """Calling-Station-Id (the client's MAC as the NAS sent it), when present."""
    nas_identifier: str | None
    """NAS-Identifier, when present: the NAS must be this one."""
    nas_ip: str | None
    """NAS-IP-Address, when present: the NAS must have it."""
