"""Sans-I/O RFC 5176 Dynamic Authorization Server core: the NAS side of Disconnect.

    das = DasCore({"10.10.0.1": b"secret"})        # the RADIUS servers allowed to ask
    for event in das.receive(data, peer, now, wall):
        DisconnectRequested -> find the sessions it names (all identification
                               attributes present must match), end them, then send
                               das.ack(event), or das.nak(event, ErrorCause....)
        PacketDropped       -> log it; nothing is sent (RFC 5176 section 3.6)
    for wire, to in das.pending(): send (answers the core gave by itself)

Exchange (RFC 5176 section 2.1), UDP port 3799 at the NAS:

    Dynamic Authorization Client (the server)     NAS (Dynamic Authorization Server)
      Disconnect-Request (40)  ------------------->
                               <-------------------  Disconnect-ACK (41)
                                                  or Disconnect-NAK (42) + Error-Cause

What is dropped, silently (never answered): a request from an address with no
configured secret, a code other than 40/43, a Request Authenticator that does not
verify (RFC 5176 section 3.5: computed as for Accounting-Request), a missing or
wrong Message-Authenticator (required: the BlastRADIUS mitigation), and an
Event-Timestamp outside `window` seconds of the caller's wall clock (replay,
section 3.5). An authentic request the core can judge alone is answered by it:

    CoA-Request (43)                        -> CoA-NAK, Error-Cause 405 (no CoA here)
    an attribute that does not parse        -> Disconnect-NAK 407 Invalid Attribute Value
    User-Password/CHAP-Password/State/...   -> Disconnect-NAK 401 Unsupported Attribute
    no session identification attribute     -> Disconnect-NAK 402 Missing Attribute

Retransmissions (same peer, identifier and Request Authenticator within
`dup_window` s) get the cached answer again, never a second decision: a Disconnect
whose ACK was lost must not turn into a NAK 503 once the session is gone.
"""

from __future__ import annotations

import ipaddress

from netfate.proto.radius.errors import RadiusError
from netfate.proto.radius.events import Address, DisconnectRequested, PacketDropped
from netfate.proto.radius.packet import (
    MIN_LENGTH,
    Attr,
    Code,
    ErrorCause,
    Packet,
    Value,
    verify_dynauth_request,
)
from netfate.proto.radius.replies import ReplyCache, SecretFor, answer, secret_lookup

Event = DisconnectRequested | PacketDropped
PORT = 3799  # RFC 5176 section 3.1 (IANA "radius-dynauth")

# Attributes that identify a session (RFC 5176 section 3: session identification).
SESSION_ATTRS = (
    Attr.ACCT_SESSION_ID,
    Attr.USER_NAME,
    Attr.FRAMED_IP_ADDRESS,
    Attr.CALLING_STATION_ID,
)
# Attributes a Disconnect-Request must not carry (RFC 5176 section 3.5, table "0"):
# secrets and authentication state have no place in it.
FORBIDDEN = (
    Attr.USER_PASSWORD,
    3,  # CHAP-Password
    Attr.STATE,
    60,  # CHAP-Challenge
    79,  # EAP-Message
)


class DasCore:
    def __init__(
        self,
        clients: dict[str, bytes] | SecretFor,
        dup_window: float = 30.0,
        window: float = 300.0,
        max_cache: int = 4096,
    ) -> None:
        # A dict (server address -> secret) or a function.
        self.secret_for = secret_lookup(clients)
        self.window = window
        self.replies = ReplyCache(dup_window, max_cache)
        self.counters = {"requests": 0, "acks": 0, "naks": 0, "drops": 0}

    def pending(self) -> list[tuple[bytes, Address]]:
        """Datagrams to send: cached answers to retransmissions, and the answers the
        core gave by itself (the NAKs listed in the module docstring)."""
        return self.replies.take()

    def _drop(self, peer: Address, reason: str) -> list[Event]:
        self.counters["drops"] += 1
        return [PacketDropped(peer, reason)]

    def receive(
        self, data: bytes, peer: Address, now: float, wall: float | None = None
    ) -> list[Event]:
        """One datagram from `peer`. `now`: a monotonic clock (duplicate cache);
        `wall`: Unix time for the Event-Timestamp check (None: not checked)."""
        self.replies.expire(now)
        secret = self.secret_for(peer[0])
        if secret is None:
            return self._drop(peer, f"{peer[0]} is not a configured RADIUS server")
        if len(data) < MIN_LENGTH:
            return self._drop(peer, f"datagram of {len(data)} octets")
        key = self.replies.key(data, peer)
        if self.replies.replay(key, peer):
            return []
        try:
            req = verify_dynauth_request(data, secret)
        except RadiusError as e:
            return self._drop(peer, str(e))
        if wall is not None:
            try:
                ts = req.integer(Attr.EVENT_TIMESTAMP)
            except RadiusError as e:
                return self._drop(peer, str(e))
            if ts is not None and abs(wall - ts) > self.window:
                return self._drop(peer, f"Event-Timestamp {ts} outside {self.window:.0f} s")
        self.replies.deciding(key, now)
        self.counters["requests"] += 1
        if req.code == Code.COA_REQUEST:
            self._answer_alone(peer, req, secret, Code.COA_NAK, ErrorCause.UNSUPPORTED_SERVICE)
            return []
        try:
            ev = self._event(req, peer)
        except RadiusError:
            self._answer_alone(
                peer, req, secret, Code.DISCONNECT_NAK, ErrorCause.INVALID_ATTRIBUTE_VALUE
            )
            return []
        if any(req.raw(a) is not None for a in FORBIDDEN):
            self._answer_alone(
                peer, req, secret, Code.DISCONNECT_NAK, ErrorCause.UNSUPPORTED_ATTRIBUTE
            )
            return []
        if all(req.raw(a) is None for a in SESSION_ATTRS):
            self._answer_alone(peer, req, secret, Code.DISCONNECT_NAK, ErrorCause.MISSING_ATTRIBUTE)
            return []
        return [ev]

    @staticmethod
    def _event(req: Packet, peer: Address) -> DisconnectRequested:
        # Every attribute decodes (a bad one raises: NAK 407), then the fields.
        for _ in req.decoded():
            pass
        framed = req.get(Attr.FRAMED_IP_ADDRESS)
        nas_ip = req.get(Attr.NAS_IP_ADDRESS)
        return DisconnectRequested(
            request=req,
            peer=peer,
            session_id=req.text(Attr.ACCT_SESSION_ID),
            user=req.text(Attr.USER_NAME),
            framed_ip=str(framed) if isinstance(framed, ipaddress.IPv4Address) else None,
            calling_station=req.text(Attr.CALLING_STATION_ID),
            nas_identifier=req.text(Attr.NAS_IDENTIFIER),
            nas_ip=str(nas_ip) if isinstance(nas_ip, ipaddress.IPv4Address) else None,
        )

    def _build(
        self, peer: Address, req: Packet, secret: bytes, code: Code, attrs: list[tuple[int, Value]]
    ) -> bytes:
        wire = answer(req, code, attrs, secret)
        self.replies.store(peer, req, wire)
        return wire

    def _answer_alone(
        self, peer: Address, req: Packet, secret: bytes, code: Code, cause: ErrorCause
    ) -> None:
        self.counters["naks"] += 1
        self.replies.send(
            self._build(peer, req, secret, code, [(Attr.ERROR_CAUSE, int(cause))]), peer
        )

    def _secret(self, ev: DisconnectRequested) -> bytes:
        secret = self.secret_for(ev.peer[0])
        if secret is None:  # the server was removed from the configuration meanwhile
            raise RadiusError(f"{ev.peer[0]} no longer configured")
        return secret

    def ack(self, ev: DisconnectRequested) -> bytes:
        """Disconnect-ACK: every session the request named has ended."""
        self.counters["acks"] += 1
        return self._build(ev.peer, ev.request, self._secret(ev), Code.DISCONNECT_ACK, [])

    def nak(self, ev: DisconnectRequested, cause: ErrorCause) -> bytes:
        """Disconnect-NAK with Error-Cause (503: no such session here)."""
        self.counters["naks"] += 1
        return self._build(
            ev.peer,
            ev.request,
            self._secret(ev),
            Code.DISCONNECT_NAK,
            [(Attr.ERROR_CAUSE, int(cause))],
        )

    def forget(self, ev: DisconnectRequested) -> None:
        """Drop the pending entry of a request that will not be answered (e.g. the
        function is frozen for a migration: the server retransmits to the new copy)."""
        self.replies.forget(ev.peer, ev.request)
