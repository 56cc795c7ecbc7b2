"""RFC 5176 Disconnect in the sans-I/O cores: a reference vector from FreeRADIUS's
radclient, the authenticators computed by hand, the two cores driven in memory, and
every way a request is refused (dropped, or answered with a NAK by the core)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from netfate.proto.radius import (
    Attr,
    ClientCore,
    Code,
    DasCore,
    DisconnectRequested,
    ErrorCause,
    Packet,
    PacketDropped,
    RadiusError,
    RequestTimedOut,
    ResponseReceived,
    decode,
)
from netfate.proto.radius import packet as rp

SECRET = b"dm-secret"
SERVER = ("10.10.0.1", 1813)

# Captured from Debian's radclient 3.2.1:
#   echo 'User-Name = "erin", Acct-Session-Id = "cpe1-abc", Message-Authenticator = 0x00' |
#   radclient 127.0.0.1:PORT disconnect dm-secret
RADCLIENT_DISCONNECT = bytes.fromhex(
    "28720036a76c11aa0c7b82462b376bfeeba6d466"
    "01066572696e"
    "2c0a637065312d616263"
    "50122adc49a76684197c2ba00059102e0b44"
)


def _das(window: float = 300.0) -> DasCore:
    return DasCore({SERVER[0]: SECRET}, window=window)


def _request(
    attrs: list[tuple[int, rp.Value]] | None = None, secret: bytes = SECRET
) -> tuple[ClientCore, bytes]:
    client = ClientCore(secret)
    _, wire = client.disconnect_request(
        attrs
        if attrs is not None
        else [(Attr.ACCT_SESSION_ID, "cpe1-1"), (Attr.USER_NAME, "erin")],
        0.0,
        tag="t",
    )
    return client, wire


def _one(evs: list[DisconnectRequested | PacketDropped]) -> DisconnectRequested:
    assert len(evs) == 1 and isinstance(evs[0], DisconnectRequested), evs
    return evs[0]


def _dropped(evs: list[DisconnectRequested | PacketDropped]) -> str:
    assert len(evs) == 1 and isinstance(evs[0], PacketDropped), evs
    return evs[0].reason


def test_radclient_vector_verifies_and_names_the_session() -> None:
    das = DasCore({"127.0.0.1": SECRET})
    ev = _one(das.receive(RADCLIENT_DISCONNECT, ("127.0.0.1", 34398), 0.0))
    assert (ev.user, ev.session_id, ev.framed_ip) == ("erin", "cpe1-abc", None)
    ack = decode(das.ack(ev))
    assert ack.code == Code.DISCONNECT_ACK and ack.identifier == 0x72
    # The same bytes under another secret are a forgery.
    other = DasCore({"127.0.0.1": b"not-the-secret"})
    assert "does not verify" in _dropped(other.receive(RADCLIENT_DISCONNECT, ("127.0.0.1", 1), 0.0))


def test_request_authenticator_and_message_authenticator_by_hand() -> None:
    """RFC 5176 section 3.5: the Request Authenticator as for Accounting-Request; the
    Message-Authenticator an HMAC-MD5 over the packet with a zero Authenticator."""
    _, wire = _request()
    pkt = decode(wire)
    assert pkt.code == Code.DISCONNECT_REQUEST
    assert pkt.attributes[0][0] == Attr.MESSAGE_AUTHENTICATOR  # first (BlastRADIUS advice)
    zero_auth = wire[:4] + bytes(16) + wire[20:]
    assert hashlib.md5(zero_auth + SECRET).digest() == pkt.authenticator
    ma = pkt.raw(Attr.MESSAGE_AUTHENTICATOR)
    assert ma is not None
    zero_ma = zero_auth[:22] + bytes(16) + zero_auth[38:]  # MA is the first attribute
    assert hmac.new(SECRET, zero_ma, hashlib.md5).digest() == ma


def test_ack_and_nak_between_cores() -> None:
    client, wire = _request(
        [
            (Attr.ACCT_SESSION_ID, "cpe1-1"),
            (Attr.USER_NAME, "erin"),
            (Attr.FRAMED_IP_ADDRESS, "192.168.1.2"),
            (Attr.CALLING_STATION_ID, "02-00-00-00-00-01"),
            (Attr.NAS_IDENTIFIER, "cpe1"),
            (Attr.NAS_IP_ADDRESS, "192.168.1.254"),
            (Attr.PROXY_STATE, b"ps"),
        ]
    )
    das = _das()
    ev = _one(das.receive(wire, SERVER, 0.0))
    assert (ev.session_id, ev.user, ev.framed_ip) == ("cpe1-1", "erin", "192.168.1.2")
    assert (ev.calling_station, ev.nas_identifier, ev.nas_ip) == (
        "02-00-00-00-00-01",
        "cpe1",
        "192.168.1.254",
    )
    answer = das.ack(ev)
    assert decode(answer).raw(Attr.PROXY_STATE) == b"ps"  # echoed, RFC 5176 section 3.5
    (got,) = client.receive(answer, 0.5)
    assert isinstance(got, ResponseReceived) and got.response.code == Code.DISCONNECT_ACK
    assert got.tag == "t" and got.rtt == 0.5

    client2, wire2 = _request()
    ev2 = _one(das.receive(wire2, SERVER, 0.0))
    (nak,) = client2.receive(das.nak(ev2, ErrorCause.SESSION_CONTEXT_NOT_FOUND), 0.0)
    assert isinstance(nak, ResponseReceived) and nak.response.code == Code.DISCONNECT_NAK
    assert nak.response.integer(Attr.ERROR_CAUSE) == 503


def test_refused_requests_are_dropped_silently() -> None:
    das = _das()
    _, wire = _request()
    assert "not a configured RADIUS server" in _dropped(das.receive(wire, ("10.9.9.9", 1813), 0))
    _, wrong = _request(secret=b"wrong")
    assert "does not verify" in _dropped(das.receive(wrong, SERVER, 0.0))
    # Without Message-Authenticator (signed correctly otherwise): BlastRADIUS, refused.
    pkt = Packet(Code.DISCONNECT_REQUEST, 7).add(Attr.USER_NAME, "erin")
    unsigned = rp.encode_accounting_request(pkt, SECRET, with_message_authenticator=False)
    assert "Message-Authenticator missing" in _dropped(das.receive(unsigned, SERVER, 0.0))
    # A right Request Authenticator but a wrong Message-Authenticator.
    pkt = Packet(Code.DISCONNECT_REQUEST, 8).add(Attr.USER_NAME, "erin")
    pkt.attributes.insert(0, (int(Attr.MESSAGE_AUTHENTICATOR), b"\x01" * 16))
    bad_ma = rp.encode_accounting_request(pkt, SECRET, with_message_authenticator=False)
    assert "Message-Authenticator does not verify" in _dropped(das.receive(bad_ma, SERVER, 0.0))
    # Another code, signed as an Accounting-Request would be.
    acct = rp.encode_accounting_request(Packet(Code.ACCOUNTING_REQUEST, 9), SECRET)
    assert "not a Dynamic Authorization request" in _dropped(das.receive(acct, SERVER, 0.0))
    assert "octets" in _dropped(das.receive(b"\x28\x01", SERVER, 0.0))
    assert das.pending() == [] and das.counters["drops"] == 6


def test_event_timestamp_outside_the_window_is_a_replay() -> None:
    das = _das(window=300.0)
    _, old = _request([(Attr.USER_NAME, "erin"), (Attr.EVENT_TIMESTAMP, 1_000_000)])
    assert "Event-Timestamp" in _dropped(das.receive(old, SERVER, 0.0, wall=1_000_301.0))
    _, fresh = _request([(Attr.USER_NAME, "erin"), (Attr.EVENT_TIMESTAMP, 1_000_000)])
    _one(das.receive(fresh, SERVER, 0.0, wall=1_000_299.0))


E = ErrorCause
ERIN = (Attr.USER_NAME, "erin")


@pytest.mark.parametrize(
    ("attrs", "cause"),
    [
        ([(Attr.NAS_IDENTIFIER, "cpe1")], E.MISSING_ATTRIBUTE),
        ([ERIN, (Attr.STATE, b"s")], E.UNSUPPORTED_ATTRIBUTE),
        ([ERIN, (Attr.USER_PASSWORD, b"x" * 16)], E.UNSUPPORTED_ATTRIBUTE),
        ([ERIN, (Attr.FRAMED_IP_ADDRESS, b"\x01\x02\x03")], E.INVALID_ATTRIBUTE_VALUE),
        ([(Attr.USER_NAME, b"\xff\xfe")], E.INVALID_ATTRIBUTE_VALUE),
    ],
)
def test_authentic_but_unusable_requests_get_a_nak_from_the_core(
    attrs: list[tuple[int, rp.Value]], cause: ErrorCause
) -> None:
    das = _das()
    client = ClientCore(SECRET)
    pkt = Packet(Code.DISCONNECT_REQUEST, 5)
    pkt.attributes = [
        (int(t), v if isinstance(v, bytes) else rp.encode_value(t, v)) for t, v in attrs
    ]
    wire = rp.encode_disconnect_request(pkt, SECRET)
    client._track(5, Code.DISCONNECT_REQUEST, pkt.authenticator, wire, None, 0.0)
    assert das.receive(wire, SERVER, 0.0) == []
    ((answer, to),) = das.pending()
    assert to == SERVER
    (got,) = client.receive(answer, 0.0)
    assert got.response.code == Code.DISCONNECT_NAK
    assert got.response.integer(Attr.ERROR_CAUSE) == cause


def test_coa_request_gets_coa_nak_unsupported_service() -> None:
    das = _das()
    pkt = Packet(Code.COA_REQUEST, 3).add(Attr.USER_NAME, "erin")
    wire = rp.encode_disconnect_request(pkt, SECRET)
    assert das.receive(wire, SERVER, 0.0) == []
    ((answer, _),) = das.pending()
    nak = rp.verify_response(answer, pkt.authenticator, SECRET, require_ma=True)
    assert nak.code == Code.COA_NAK and nak.integer(Attr.ERROR_CAUSE) == 405


def test_retransmission_is_answered_from_the_cache_never_decided_twice() -> None:
    das = _das()
    client, wire = _request()
    ev = _one(das.receive(wire, SERVER, 0.0))
    assert das.receive(wire, SERVER, 0.1) == [] and das.pending() == []  # still deciding
    ack = das.ack(ev)
    assert das.receive(wire, SERVER, 0.2) == []
    assert das.pending() == [(ack, SERVER)]  # the same answer again, no second event
    # After the duplicate window the request is new again (a fresh decision).
    _one(das.receive(wire, SERVER, 100.0))
    (got,) = client.receive(ack, 0.3)
    assert got.response.code == Code.DISCONNECT_ACK


def test_client_ignores_forged_or_unsigned_answers_and_times_out() -> None:
    client, wire = _request()
    req = decode(wire)
    # Signed with another secret.
    forged = rp.encode_response(
        Packet(Code.DISCONNECT_ACK, req.identifier), req.authenticator, b"x"
    )
    # Right secret, but no Message-Authenticator (required for Disconnect answers).
    bare = rp.encode_response(
        Packet(Code.DISCONNECT_ACK, req.identifier),
        req.authenticator,
        SECRET,
        with_message_authenticator=False,
    )
    # Right secret and MA, but an Access-Accept is no answer to a Disconnect-Request.
    wrong_code = rp.encode_response(
        Packet(Code.ACCESS_ACCEPT, req.identifier), req.authenticator, SECRET
    )
    for answer in (forged, bare, wrong_code):
        assert client.receive(answer, 0.0) == []
    assert client.ignored == 3
    sent = [wire]
    now = 0.0
    timed_out: list[RequestTimedOut] = []
    while not timed_out:
        now += client.timeout
        resend, timed_out = client.poll(now)
        sent += resend
    assert sent == [wire] * (1 + client.retries)  # the very same bytes, bounded
    assert timed_out[0].tag == "t" and client.in_flight() == 0


def test_encode_disconnect_request_refuses_other_codes() -> None:
    with pytest.raises(RadiusError):
        rp.encode_disconnect_request(Packet(Code.ACCOUNTING_REQUEST, 1), SECRET)
    with pytest.raises(RadiusError):
        rp.verify_dynauth_request(rp.encode_accounting_request(Packet(4, 1), SECRET), SECRET)
