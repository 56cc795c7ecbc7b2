"""RADIUS core: RFC 2865 vectors, round trips, and the two cores driven in memory."""

from __future__ import annotations

import pytest

from netfate.proto.radius import (
    AccessRequested,
    AccountingReceived,
    AcctStatus,
    Attr,
    ClientCore,
    Code,
    Packet,
    PacketDropped,
    RadiusError,
    RequestTimedOut,
    ResponseReceived,
    ServerCore,
    decode,
)
from netfate.proto.radius import packet as rp

# RFC 2865 section 7.1: user nemo, password "arctangent", secret "xyzzy5461".
RFC_REQUEST = bytes.fromhex(
    "01000038 0f403f9473978057bd83d5cb98f4227a 01066e656d6f"
    "02120dbe708d93d413ce3196e43f782a0aee 0406c0a80110 050600000003".replace(" ", "")
)
RFC_ACCEPT = bytes.fromhex(
    "02000026 86fe220e7624ba2a1005f6bf9b55e0b2 060600000001 0f0600000000 0e06c0a80103".replace(
        " ", ""
    )
)
SECRET = b"xyzzy5461"
PEER = ("127.0.0.1", 40000)


def test_rfc2865_vector_password_and_response_authenticator() -> None:
    req = decode(RFC_REQUEST)
    assert req.code == Code.ACCESS_REQUEST
    assert req.text(Attr.USER_NAME) == "nemo"
    hidden = req.raw(Attr.USER_PASSWORD)
    assert hidden is not None
    assert rp.reveal_password(hidden, SECRET, req.authenticator) == b"arctangent"
    assert rp.hide_password(b"arctangent", SECRET, req.authenticator) == hidden
    # The RFC's Access-Accept verifies against the request's authenticator.
    acc = rp.verify_response(RFC_ACCEPT, req.authenticator, SECRET, require_ma=False)
    assert acc.code == Code.ACCESS_ACCEPT
    with pytest.raises(RadiusError, match="Message-Authenticator missing"):
        rp.verify_response(RFC_ACCEPT, req.authenticator, SECRET, require_ma=True)
    with pytest.raises(RadiusError, match="Response Authenticator"):
        rp.verify_response(RFC_ACCEPT, req.authenticator, b"wrong", require_ma=False)


def test_rfc_request_without_message_authenticator_is_dropped() -> None:
    core = ServerCore({"127.0.0.1": SECRET})
    (ev,) = core.receive(RFC_REQUEST, PEER, 0.0)
    assert isinstance(ev, PacketDropped)
    assert "Message-Authenticator missing" in ev.reason


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 100, 128])
def test_password_round_trip(n: int) -> None:
    pw = bytes((i % 250) + 1 for i in range(n))
    ra = bytes(range(16))
    hidden = rp.hide_password(pw, b"s", ra)
    assert len(hidden) % 16 == 0 and len(hidden) >= 16
    assert rp.reveal_password(hidden, b"s", ra) == pw


def test_password_too_long_refused() -> None:
    with pytest.raises(RadiusError):
        rp.hide_password(b"x" * 129, b"s", bytes(16))


def test_attributes_round_trip() -> None:
    pkt = Packet(Code.ACCOUNTING_REQUEST, 7)
    pkt.add(Attr.USER_NAME, "alice")
    pkt.add(Attr.FRAMED_IP_ADDRESS, "192.168.1.20")
    pkt.add(Attr.ACCT_STATUS_TYPE, AcctStatus.INTERIM_UPDATE)
    pkt.add(Attr.ACCT_INPUT_OCTETS, 2**32 - 1)
    pkt.add(Attr.CALLING_STATION_ID, "02-00-00-00-00-01")
    pkt.add(200, b"\x00\x01")
    back = decode(pkt.encode())
    assert back == pkt
    assert dict(back.decoded())[Attr.FRAMED_IP_ADDRESS].packed == bytes([192, 168, 1, 20])  # type: ignore[union-attr]
    assert back.integer(Attr.ACCT_INPUT_OCTETS) == 2**32 - 1


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        bytes(19),
        bytes.fromhex("0100 0013") + bytes(16),  # Length 19
        bytes.fromhex("0100 1001") + bytes(16),  # Length 4097
        bytes.fromhex("0100 0020") + bytes(16),  # Length 32 > datagram
        bytes.fromhex("0100 0016") + bytes(16) + b"\x01\x01",  # attribute length 1
        bytes.fromhex("0100 0017") + bytes(16) + b"\x01\x05\x00",  # runs past Length
    ],
)
def test_malformed_raise_radius_error(bad: bytes) -> None:
    with pytest.raises(RadiusError):
        decode(bad)


def test_integer_attribute_checks() -> None:
    with pytest.raises(RadiusError):
        Packet(1, 1).add(Attr.SESSION_TIMEOUT, -1)
    with pytest.raises(RadiusError):
        Packet(1, 1).add(Attr.USER_NAME, "x" * 254)
    pkt = decode(bytes.fromhex("0200 0017") + bytes(16) + b"\x1b\x03\x00")
    with pytest.raises(RadiusError):
        pkt.get(Attr.SESSION_TIMEOUT)


def _pair(secret: bytes = b"s3cret") -> tuple[ClientCore, ServerCore]:
    return ClientCore(secret), ServerCore({"127.0.0.1": b"s3cret"})


def test_access_accept_and_reject_between_cores() -> None:
    client, server = _pair()
    ident, wire = client.access_request("alice", b"pw", [(Attr.NAS_IDENTIFIER, "cpe1")], 0.0)
    # Message-Authenticator is the first attribute of every request.
    assert decode(wire).attributes[0][0] == Attr.MESSAGE_AUTHENTICATOR
    (ev,) = server.receive(wire, PEER, 0.0)
    assert isinstance(ev, AccessRequested)
    assert (ev.user, ev.password) == ("alice", b"pw")
    answer = server.accept(ev, [(Attr.SESSION_TIMEOUT, 3600), (Attr.IDLE_TIMEOUT, 30)])
    assert decode(answer).attributes[0][0] == Attr.MESSAGE_AUTHENTICATOR
    (resp,) = client.receive(answer, 0.01)
    assert isinstance(resp, ResponseReceived)
    assert resp.identifier == ident and resp.response.code == Code.ACCESS_ACCEPT
    assert resp.response.integer(Attr.IDLE_TIMEOUT) == 30
    assert resp.response.integer(Attr.SESSION_TIMEOUT) == 3600

    _, wire = client.access_request("alice", b"wrong", [], 1.0)
    (ev,) = server.receive(wire, PEER, 1.0)
    assert isinstance(ev, AccessRequested)
    (resp,) = client.receive(server.reject(ev, "no"), 1.0)
    assert resp.response.code == Code.ACCESS_REJECT


def test_wrong_secret_dropped_by_server_and_forged_answer_ignored_by_client() -> None:
    client = ClientCore(b"other")
    server = ServerCore({"127.0.0.1": b"s3cret"})
    _, wire = client.access_request("alice", b"pw", [], 0.0)
    (ev,) = server.receive(wire, PEER, 0.0)
    assert isinstance(ev, PacketDropped) and "Message-Authenticator" in ev.reason
    # An answer made with another secret is not taken by the client.
    good_client, _ = _pair()
    _, wire = good_client.access_request("alice", b"pw", [], 0.0)
    (ev,) = ServerCore({"127.0.0.1": b"s3cret"}).receive(wire, PEER, 0.0)
    assert isinstance(ev, AccessRequested)
    forged = ServerCore({"127.0.0.1": b"not-it"})
    forged._cache = {}
    pkt = Packet(Code.ACCESS_ACCEPT, ev.request.identifier)
    answer = rp.encode_response(pkt, ev.request.authenticator, b"not-it")
    assert good_client.receive(answer, 0.1) == []
    assert good_client.ignored == 1


def test_response_without_message_authenticator_ignored_by_client() -> None:
    client, server = _pair()
    _, wire = client.access_request("alice", b"pw", [], 0.0)
    (ev,) = server.receive(wire, PEER, 0.0)
    assert isinstance(ev, AccessRequested)
    pkt = Packet(Code.ACCESS_ACCEPT, ev.request.identifier)
    bare = rp.encode_response(
        pkt, ev.request.authenticator, b"s3cret", with_message_authenticator=False
    )
    assert client.receive(bare, 0.1) == []


def test_unknown_client_and_unknown_code_dropped() -> None:
    client, server = _pair()
    _, wire = client.access_request("alice", b"pw", [], 0.0)
    (ev,) = server.receive(wire, ("10.0.0.9", 1), 0.0)
    assert isinstance(ev, PacketDropped) and "no RADIUS client" in ev.reason
    (ev,) = server.receive(bytes([Code.ACCESS_ACCEPT]) + wire[1:], PEER, 0.0)
    assert isinstance(ev, PacketDropped)


def test_retransmission_gets_same_answer_once_decided() -> None:
    client, server = _pair()
    _, wire = client.access_request("alice", b"pw", [], 0.0)
    (ev,) = server.receive(wire, PEER, 0.0)
    assert isinstance(ev, AccessRequested)
    assert server.receive(wire, PEER, 0.1) == []  # still deciding: nothing new
    answer = server.accept(ev, [])
    assert server.receive(wire, PEER, 0.2) == []
    assert server.pending() == [(answer, PEER)]
    # After the window it is a new request.
    (again,) = server.receive(wire, PEER, 10.0)
    assert isinstance(again, AccessRequested)


def test_accounting_start_interim_stop() -> None:
    client, server = _pair()
    statuses = []
    for i, st in enumerate((AcctStatus.START, AcctStatus.INTERIM_UPDATE, AcctStatus.STOP)):
        attrs: list[tuple[int, rp.Value]] = [
            (Attr.ACCT_STATUS_TYPE, int(st)),
            (Attr.ACCT_SESSION_ID, "sess-1"),
            (Attr.USER_NAME, "alice"),
            (Attr.ACCT_INPUT_OCTETS, 100 * i),
        ]
        _, wire = client.accounting_request(attrs, float(i))
        (ev,) = server.receive(wire, PEER, float(i))
        assert isinstance(ev, AccountingReceived)
        statuses.append(ev.status)
        assert server.pending() == []
        answer = server.accounting_response(ev)
        (resp,) = client.receive(answer, float(i))
        assert resp.response.code == Code.ACCOUNTING_RESPONSE
    assert statuses == [1, 3, 2]


def test_accounting_with_wrong_secret_dropped() -> None:
    client = ClientCore(b"nope")
    _, wire = client.accounting_request(
        [(Attr.ACCT_STATUS_TYPE, 1), (Attr.ACCT_SESSION_ID, "x")], 0.0
    )
    (ev,) = ServerCore({"127.0.0.1": b"s3cret"}).receive(wire, PEER, 0.0)
    assert isinstance(ev, PacketDropped)


def test_client_retransmits_then_times_out() -> None:
    client = ClientCore(b"s", timeout=1.0, retries=2)
    ident, wire = client.access_request("a", b"b", [], 0.0, tag="t")
    assert client.poll(0.5) == ([], [])
    assert client.poll(1.0) == ([wire], [])
    assert client.poll(2.0) == ([wire], [])
    resend, dead = client.poll(3.0)
    assert resend == [] and dead == [RequestTimedOut(ident, "t")]
    assert client.in_flight() == 0


def test_duplicate_message_authenticator_refused() -> None:
    pkt = Packet(Code.ACCESS_REQUEST, 1, bytes(16))
    pkt.attributes += [(80, bytes(16)), (80, bytes(16))]
    with pytest.raises(RadiusError, match="more than one"):
        rp.verify_access_request(pkt.encode(), b"s")
