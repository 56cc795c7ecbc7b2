"""Fuzz the RADIUS cores: any datagram is accepted or refused with RadiusError
(inside the cores: dropped), and nothing but a real exchange yields an Accept, an
authentic Disconnect-Request (RFC 5176) or an accepted Disconnect-ACK."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.proto.radius import (
    AccessRequested,
    ClientCore,
    Code,
    DasCore,
    DisconnectRequested,
    RadiusError,
    ServerCore,
    decode,
)
from netfate.proto.radius import packet as rp
from radius_fixtures import mutated

SECRET = b"fuzz-secret"
PEER = ("127.0.0.1", 5555)
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _request() -> tuple[ClientCore, bytes]:
    client = ClientCore(SECRET)
    _, wire = client.access_request("alice", b"pw", [], 0.0)
    return client, wire


def _forged_answer(data: bytes, code: int, request: bytes) -> bytes:
    """Random bytes as an answer to `request`: any code, its Identifier, a Length that
    fits (what an off-path attacker who saw the request could send)."""
    forged = bytearray(data.ljust(20, b"\x00"))
    forged[0] = code
    forged[1] = request[1]
    forged[2:4] = min(len(forged), 4096).to_bytes(2, "big")
    return bytes(forged)


@SETTINGS
@given(st.binary(max_size=4200))
def test_decode_accepts_or_raises(data: bytes) -> None:
    try:
        pkt = decode(data)
    except RadiusError:
        return
    for t, _ in pkt.attributes:
        with contextlib.suppress(RadiusError):
            pkt.get(t)


@SETTINGS
@given(st.binary(max_size=600))
def test_server_core_never_crashes_on_garbage(data: bytes) -> None:
    server = ServerCore({"127.0.0.1": SECRET})
    for ev in server.receive(data, PEER, 0.0):
        # Random bytes cannot carry a valid HMAC-MD5 Message-Authenticator.
        assert not isinstance(ev, AccessRequested)


@SETTINGS
@given(st.data())
def test_mutated_request_is_never_decided(data: st.DataObject) -> None:
    """Flip, cut or extend a valid request: the server must not hand it on."""
    # The identifier is covered by the MAC too, but skip the trivial case.
    buf = mutated(data, _request()[1], keep=(1, 2, 3))
    if buf is None:
        return
    server = ServerCore({"127.0.0.1": SECRET})
    evs = server.receive(buf, PEER, 0.0)
    assert not any(isinstance(e, AccessRequested) for e in evs)


@SETTINGS
@given(st.binary(max_size=600), st.integers(0, 255))
def test_client_never_accepts_forged_response(data: bytes, code: int) -> None:
    client, wire = _request()
    assert client.receive(_forged_answer(data, code, wire), 0.0) == []


@SETTINGS
@given(st.data())
def test_mutated_accept_never_accepted(data: st.DataObject) -> None:
    client, wire = _request()
    server = ServerCore({"127.0.0.1": SECRET})
    (ev,) = server.receive(wire, PEER, 0.0)
    assert isinstance(ev, AccessRequested)
    answer = bytearray(server.accept(ev, [(27, 60)]))
    i = data.draw(st.integers(0, len(answer) - 1))
    if i == 1:
        return  # a different identifier simply matches nothing
    answer[i] ^= 1 << data.draw(st.integers(0, 7))
    evs = client.receive(bytes(answer), 0.0)
    assert all(e.response.code != Code.ACCESS_ACCEPT for e in evs)
    assert evs == []


@SETTINGS
@given(
    st.binary(min_size=16, max_size=128).filter(lambda b: len(b) % 16 == 0), st.binary(max_size=20)
)
def test_reveal_password_any_input(hidden: bytes, secret: bytes) -> None:
    with contextlib.suppress(RadiusError):
        rp.reveal_password(hidden, secret, bytes(16))


# ---------------------------------------------------------------- RFC 5176 Disconnect

DM_SERVER = ("10.10.0.1", 1813)


def _disconnect() -> tuple[ClientCore, bytes]:
    client = ClientCore(SECRET)
    _, wire = client.disconnect_request(
        [(rp.Attr.ACCT_SESSION_ID, "cpe1-1"), (rp.Attr.USER_NAME, "alice")], 0.0
    )
    return client, wire


@SETTINGS
@given(st.binary(max_size=600), st.integers(0, 255))
def test_das_core_never_accepts_garbage(data: bytes, code: int) -> None:
    """Random bytes (with any code) never pass as an authentic Disconnect-Request, and
    nothing is ever answered to them."""
    das = DasCore({DM_SERVER[0]: SECRET})
    buf = bytearray(data.ljust(20, b"\x00"))
    buf[0] = code
    evs = das.receive(bytes(buf), DM_SERVER, 0.0, wall=0.0)
    assert not any(isinstance(e, DisconnectRequested) for e in evs)
    assert das.pending() == []


@SETTINGS
@given(st.data())
def test_mutated_disconnect_request_never_accepted(data: st.DataObject) -> None:
    """Flip a bit, cut, or extend (fixing Length) a valid request: dropped, unanswered."""
    buf = mutated(data, _disconnect()[1])
    if buf is None:
        return
    das = DasCore({DM_SERVER[0]: SECRET})
    evs = das.receive(buf, DM_SERVER, 0.0)
    assert not any(isinstance(e, DisconnectRequested) for e in evs)
    assert das.pending() == []


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(min_size=1, max_size=40)), max_size=12))
def test_authentic_request_with_any_attributes_never_crashes(
    attrs: list[tuple[int, bytes]],
) -> None:
    """Correctly signed requests carrying arbitrary attribute values (bad lengths, bad
    UTF-8, extra Message-Authenticators): an event, a NAK from the core, or a drop."""
    pkt = rp.Packet(rp.Code.DISCONNECT_REQUEST, 1)
    pkt.attributes = [(t, v) for t, v in attrs if t != rp.Attr.MESSAGE_AUTHENTICATOR]
    wire = rp.encode_disconnect_request(pkt, SECRET)
    das = DasCore({DM_SERVER[0]: SECRET})
    evs = das.receive(wire, DM_SERVER, 0.0)
    for ev in evs:
        if isinstance(ev, DisconnectRequested):
            assert rp.decode(das.ack(ev)).code == rp.Code.DISCONNECT_ACK
    for answer, to in das.pending():
        assert to == DM_SERVER and rp.decode(answer).code == rp.Code.DISCONNECT_NAK


@SETTINGS
@given(st.binary(max_size=600), st.integers(0, 255))
def test_client_never_accepts_forged_disconnect_answer(data: bytes, code: int) -> None:
    client, wire = _disconnect()
    assert client.receive(_forged_answer(data, code, wire), 0.0) == []
    assert client.in_flight() == 1


@SETTINGS
@given(st.data())
def test_mutated_disconnect_ack_never_accepted(data: st.DataObject) -> None:
    client, wire = _disconnect()
    das = DasCore({DM_SERVER[0]: SECRET})
    (ev,) = das.receive(wire, DM_SERVER, 0.0)
    assert isinstance(ev, DisconnectRequested)
    answer = bytearray(das.ack(ev))
    i = data.draw(st.integers(0, len(answer) - 1))
    if i == 1:
        return  # another identifier matches nothing
    answer[i] ^= 1 << data.draw(st.integers(0, 7))
    assert client.receive(bytes(answer), 0.0) == []
