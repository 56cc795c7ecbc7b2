"""Fuzz the RADIUS cores: any datagram is accepted or refused with RadiusError
(inside the cores: dropped), and nothing but a real exchange yields an Accept."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.proto.radius import (
    AccessRequested,
    ClientCore,
    Code,
    RadiusError,
    ServerCore,
    decode,
)
from netfate.proto.radius import packet as rp

SECRET = b"fuzz-secret"
PEER = ("127.0.0.1", 5555)
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _request() -> tuple[ClientCore, bytes]:
    client = ClientCore(SECRET)
    _, wire = client.access_request("alice", b"pw", [], 0.0)
    return client, wire


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
    _, wire = _request()
    buf = bytearray(wire)
    how = data.draw(st.sampled_from(["flip", "cut", "extend_length"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(buf) - 1))
        bit = data.draw(st.integers(0, 7))
        if i in (2, 3):
            return  # Length: covered by cut/extend below
        buf[i] ^= 1 << bit
        if i == 1:
            return  # the identifier is covered by the MAC too, but skip the trivial case
    elif how == "cut":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    else:
        extra = data.draw(st.binary(min_size=1, max_size=40))
        buf += extra
        buf[2:4] = len(buf).to_bytes(2, "big")
    server = ServerCore({"127.0.0.1": SECRET})
    evs = server.receive(bytes(buf), PEER, 0.0)
    assert not any(isinstance(e, AccessRequested) for e in evs)


@SETTINGS
@given(st.binary(max_size=600), st.integers(0, 255))
def test_client_never_accepts_forged_response(data: bytes, code: int) -> None:
    client, wire = _request()
    forged = bytearray(data.ljust(20, b"\x00"))
    forged[0] = code
    forged[1] = wire[1]
    forged[2:4] = min(len(forged), 4096).to_bytes(2, "big")
    evs = client.receive(bytes(forged), 0.0)
    assert evs == []


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
