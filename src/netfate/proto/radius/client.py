"""Sans-I/O RADIUS client core: requests out, responses and timeouts in.

    core = ClientCore(b"secret")
    ident, wire = core.access_request("alice", b"pw", attrs, now, tag=...)
    send wire; then for each datagram: core.receive(data, now) -> events
    and periodically core.poll(now) -> (datagrams to resend, RequestTimedOut events)

The same core sends RFC 5176 Disconnect-Requests (a server acting as Dynamic
Authorization Client towards a NAS): `core.disconnect_request(attrs, now, tag)`,
answered by Disconnect-ACK or Disconnect-NAK (ResponseReceived).

Every Access-Request and Disconnect-Request carries a Message-Authenticator; a
response must verify (Response Authenticator) and, when
`require_message_authenticator`, an answer to either must carry a valid
Message-Authenticator too, or it is ignored as a forgery (BlastRADIUS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from netfate.proto.radius.errors import RadiusError
from netfate.proto.radius.events import RequestTimedOut, ResponseReceived
from netfate.proto.radius.packet import (
    HEADER,
    RESPONSES,
    Attr,
    Code,
    Packet,
    Value,
    encode_accounting_request,
    encode_disconnect_request,
    encode_request,
    hide_password,
    verify_response,
)


@dataclass
class _Pending:
    code: Code
    authenticator: bytes
    wire: bytes
    tag: object
    first_sent: float
    next_at: float
    tries: int


class ClientCore:
    def __init__(
        self,
        secret: bytes,
        timeout: float = 1.0,
        retries: int = 3,
        require_message_authenticator: bool = True,
        random: bytes | None = None,
    ) -> None:
        self.secret = secret
        self.timeout = timeout
        self.retries = retries
        self.require_ma = require_message_authenticator
        self._pending: dict[int, _Pending] = {}
        self._next_id = int.from_bytes(random or os.urandom(1), "big")
        self.ignored = 0

    def _ident(self) -> int:
        for _ in range(256):
            ident = self._next_id
            self._next_id = (self._next_id + 1) & 0xFF
            if ident not in self._pending:
                return ident
        raise RadiusError("256 requests outstanding: no identifier free")

    def in_flight(self) -> int:
        return len(self._pending)

    def access_request(
        self,
        user: str,
        password: bytes,
        attrs: list[tuple[int, Value]],
        now: float,
        tag: object = None,
    ) -> tuple[int, bytes]:
        ident = self._ident()
        ra = os.urandom(16)
        pkt = Packet(Code.ACCESS_REQUEST, ident, ra)
        pkt.add(Attr.USER_NAME, user)
        pkt.attributes.append((int(Attr.USER_PASSWORD), hide_password(password, self.secret, ra)))
        for t, v in attrs:
            pkt.add(t, v)
        wire = encode_request(pkt, self.secret)
        self._track(ident, Code.ACCESS_REQUEST, ra, wire, tag, now)
        return ident, wire

    def accounting_request(
        self, attrs: list[tuple[int, Value]], now: float, tag: object = None
    ) -> tuple[int, bytes]:
        return self._request(Code.ACCOUNTING_REQUEST, attrs, now, tag)

    def disconnect_request(
        self, attrs: list[tuple[int, Value]], now: float, tag: object = None
    ) -> tuple[int, bytes]:
        """RFC 5176 Disconnect-Request: session identification attributes in `attrs`
        (Acct-Session-Id, User-Name, Framed-IP-Address, ...), Message-Authenticator
        added; retransmitted by poll() like any request, with the same bytes."""
        return self._request(Code.DISCONNECT_REQUEST, attrs, now, tag)

    def _request(
        self, code: Code, attrs: list[tuple[int, Value]], now: float, tag: object
    ) -> tuple[int, bytes]:
        """An Accounting- or Disconnect-Request: its Request Authenticator is computed
        over the packet (RFC 2866 section 3, RFC 5176 section 3.5), not random."""
        ident = self._ident()
        pkt = Packet(code, ident)
        for t, v in attrs:
            pkt.add(t, v)
        if code == Code.DISCONNECT_REQUEST:
            wire = encode_disconnect_request(pkt, self.secret)
        else:
            wire = encode_accounting_request(pkt, self.secret)
        self._track(ident, code, pkt.authenticator, wire, tag, now)
        return ident, wire

    def _track(
        self, ident: int, code: Code, auth: bytes, wire: bytes, tag: object, now: float
    ) -> None:
        self._pending[ident] = _Pending(code, auth, wire, tag, now, now + self.timeout, 1)

    def receive(self, data: bytes, now: float) -> list[ResponseReceived]:
        """A datagram from the server; unmatched or unverifiable ones are ignored."""
        if len(data) < HEADER.size:
            self.ignored += 1
            return []
        p = self._pending.get(data[1])
        if p is None:
            self.ignored += 1
            return []
        # Accounting responses need no Message-Authenticator (RFC 3579 covers Access);
        # Disconnect-ACK/NAK must carry one (RFC 5176 section 3.5, BlastRADIUS).
        require = self.require_ma and p.code in (Code.ACCESS_REQUEST, Code.DISCONNECT_REQUEST)
        try:
            pkt = verify_response(data, p.authenticator, self.secret, require)
        except RadiusError:
            self.ignored += 1
            return []
        if pkt.code not in RESPONSES[p.code]:
            self.ignored += 1
            return []
        del self._pending[data[1]]
        return [ResponseReceived(pkt.identifier, p.tag, pkt, now - p.first_sent)]

    def next_deadline(self) -> float | None:
        return min((p.next_at for p in self._pending.values()), default=None)

    def poll(self, now: float) -> tuple[list[bytes], list[RequestTimedOut]]:
        resend: list[bytes] = []
        dead: list[RequestTimedOut] = []
        for ident, p in list(self._pending.items()):
            if now < p.next_at:
                continue
            if p.tries > self.retries:
                del self._pending[ident]
                dead.append(RequestTimedOut(ident, p.tag))
                continue
            p.tries += 1
            p.next_at = now + self.timeout
            resend.append(p.wire)
        return resend, dead
