"""Sans-I/O RADIUS server core: datagram + peer + now in, events and datagrams out.

    core = ServerCore({"127.0.0.1": b"secret"})
    for event in core.receive(data, peer, now):
        AccessRequested   -> the application checks the password, then calls
                             core.accept(event, attrs) or core.reject(event)
                             and sends the bytes returned to event.peer
        AccountingReceived -> record it, then send core.accounting_response(event)
        PacketDropped      -> log it; nothing is sent (RFC 2865: silently discard)

Safety rules it enforces (BlastRADIUS, CVE-2024-3596): an Access-Request without
a valid Message-Authenticator is dropped, and every response carries one, first.
A request from an address with no configured client is dropped. Retransmissions
(same peer, identifier and authenticator within `dup_window` seconds) get the
cached answer again instead of a second decision (RFC 5080 section 2.2.2).
"""

from __future__ import annotations

from netfate.proto.radius.errors import RadiusError
from netfate.proto.radius.events import (
    AccessRequested,
    AccountingReceived,
    Address,
    PacketDropped,
)
from netfate.proto.radius.packet import (
    MIN_LENGTH,
    ZERO16,
    Attr,
    Code,
    Value,
    reveal_password,
    verify_access_request,
    verify_accounting_request,
)
from netfate.proto.radius.replies import ReplyCache, SecretFor, answer, secret_lookup

Event = AccessRequested | AccountingReceived | PacketDropped


class ServerCore:
    def __init__(
        self,
        clients: dict[str, bytes] | SecretFor,
        dup_window: float = 5.0,
        max_cache: int = 65536,
    ) -> None:
        # A dict (address -> secret) or a function, e.g. one that matches subnets.
        self.secret_for = secret_lookup(clients)
        self.replies = ReplyCache(dup_window, max_cache)
        self.counters = {"accepts": 0, "rejects": 0, "drops": 0, "accounting": 0}

    def pending(self) -> list[tuple[bytes, Address]]:
        """Datagrams to send (answers to retransmitted requests)."""
        return self.replies.take()

    def _drop(self, peer: Address, reason: str) -> list[Event]:
        self.counters["drops"] += 1
        return [PacketDropped(peer, reason)]

    def receive(self, data: bytes, peer: Address, now: float) -> list[Event]:
        self.replies.expire(now)
        secret = self.secret_for(peer[0])
        if secret is None:
            return self._drop(peer, f"no RADIUS client configured for {peer[0]}")
        if len(data) < MIN_LENGTH:
            return self._drop(peer, f"datagram of {len(data)} octets")
        key = self.replies.key(data, peer)
        if self.replies.replay(key, peer):
            return []  # a retransmission: answered again, or still being decided
        code = data[0]
        try:
            if code == Code.ACCESS_REQUEST:
                req = verify_access_request(data, secret)
                user = req.text(Attr.USER_NAME)
                hidden = req.raw(Attr.USER_PASSWORD)
                if user is None:
                    raise RadiusError("Access-Request without User-Name")
                if hidden is None:
                    raise RadiusError("Access-Request without User-Password (only PAP here)")
                password = reveal_password(hidden, secret, req.authenticator)
                self.replies.deciding(key, now)
                return [AccessRequested(req, peer, user, password)]
            if code == Code.ACCOUNTING_REQUEST:
                req = verify_accounting_request(data, secret)
                status = req.integer(Attr.ACCT_STATUS_TYPE)
                session = req.text(Attr.ACCT_SESSION_ID)
                if status is None or session is None:
                    raise RadiusError("Accounting-Request without Acct-Status-Type/Session-Id")
                self.replies.deciding(key, now)
                self.counters["accounting"] += 1
                return [
                    AccountingReceived(req, peer, status, session, req.text(Attr.USER_NAME) or "")
                ]
            return self._drop(peer, f"unsupported code {code}")
        except RadiusError as e:
            return self._drop(peer, str(e))

    def _secret(self, ev: AccessRequested | AccountingReceived) -> bytes:
        secret = self.secret_for(ev.peer[0])
        if secret is None:  # the client was removed while the decision was pending
            raise RadiusError(f"client {ev.peer[0]} no longer configured")
        return secret

    def _answer(
        self,
        ev: AccessRequested | AccountingReceived,
        code: Code,
        attrs: list[tuple[int, Value]],
        ma_vector: bytes | None = None,
    ) -> bytes:
        wire = answer(ev.request, code, attrs, self._secret(ev), ma_vector)
        self.replies.store(ev.peer, ev.request, wire)
        return wire

    def accounting_response(
        self, ev: AccountingReceived, attrs: list[tuple[int, Value]] | None = None
    ) -> bytes:
        """The Accounting-Response to send to ev.peer (extra attributes: VSAs)."""
        return self._answer(ev, Code.ACCOUNTING_RESPONSE, attrs or [], ma_vector=ZERO16)

    def accept(self, ev: AccessRequested, attrs: list[tuple[int, Value]]) -> bytes:
        self.counters["accepts"] += 1
        return self._answer(ev, Code.ACCESS_ACCEPT, attrs)

    def reject(self, ev: AccessRequested, message: str | None = None) -> bytes:
        self.counters["rejects"] += 1
        return self._answer(
            ev, Code.ACCESS_REJECT, [(Attr.REPLY_MESSAGE, message)] if message else []
        )

    def forget(self, ev: AccessRequested | AccountingReceived) -> None:
        """Drop the pending entry of a request that will never be answered."""
        self.replies.forget(ev.peer, ev.request)
