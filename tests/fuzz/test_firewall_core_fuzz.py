"""Fuzz the embedded RADIUS server's sans-I/O core (services/firewall/core.py): any
datagram, on any listener, from any peer, is taken or dropped, never raises; random
bytes never become a decision, and a Disconnect-ACK/NAK altered on the way is never
taken for an answer to our Disconnect-Request."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.proto.radius import (
    AccessRequested,
    AccountingReceived,
    Code,
    DasCore,
    DisconnectRequested,
    ErrorCause,
    PacketDropped,
)
from netfate.services.firewall.core import Clients, RadiusCore
from netfate.services.firewall.disconnect import DisconnectAcked, DisconnectNaked, DmJob
from netfate.services.firewall.nas_sessions import ListenerKey, NasSession

SECRET = b"fuzz-secret"
NAS = ("10.0.0.2", 40000)
DM_TO = ("10.0.0.2", 3799)
LISTENER: ListenerKey = ("10.0.0.1", 1812, "ns")
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _core_with_request(ack: bool = True) -> tuple[RadiusCore, bytes]:
    """A core with one Disconnect-Request in flight to NAS, and the NAS's ACK (or
    NAK) to it."""
    clients = Clients()
    clients.load([("10.0.0.0/24", SECRET.decode())])
    core = RadiusCore(clients)
    n = NasSession(("10.0.0.2", "s1"), "alice", "cpe1", NAS, LISTENER, None, 0.0, 0.0)
    core.dm.send([DmJob(n, DM_TO, SECRET, "fuzz")], {LISTENER}, 0.0, 0.0)
    ((_, wire, _),) = core.datagrams_to_send()
    das = DasCore({LISTENER[0]: SECRET})
    (req,) = das.receive(wire, (LISTENER[0], LISTENER[1]), 0.0, 0.0)
    assert isinstance(req, DisconnectRequested)
    return core, das.ack(req) if len(wire) % 2 else das.nak(
        req, ErrorCause.ADMINISTRATIVELY_PROHIBITED
    )


KNOWN = (AccessRequested, AccountingReceived, PacketDropped)


@SETTINGS
@given(
    st.binary(max_size=600),
    st.sampled_from([NAS, DM_TO, ("10.9.9.9", 1), ("127.0.0.1", 0)]),
    st.sampled_from([LISTENER, ("127.0.0.1", 1812, None)]),
    st.integers(0, 255),
)
def test_any_datagram_is_taken_or_dropped(
    data: bytes, peer: tuple[str, int], listener: ListenerKey, code: int
) -> None:
    core, _ = _core_with_request()
    for buf in (data, bytes([code]) + data[1:]):
        events = core.receive(buf, peer, listener, 1.0)
        for ev in events:
            assert isinstance(ev, KNOWN), ev  # random bytes: no Disconnect outcome
            # Random bytes cannot carry a valid HMAC-MD5 Message-Authenticator.
            assert not isinstance(ev, AccessRequested)
        for lk, _wire, _to in core.datagrams_to_send():
            assert lk == listener  # an answer leaves by the listener it came in on
    assert core.dm.counters["acked"] == core.dm.counters["naked"] == 0


@SETTINGS
@given(st.data())
def test_altered_answer_is_never_taken(data: st.DataObject) -> None:
    core, answer = _core_with_request(data.draw(st.booleans()))
    buf = bytearray(answer)
    how = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if how == "flip":
        i = data.draw(st.integers(0, len(buf) - 1))
        if i == 1:
            return  # another identifier simply matches no request
        buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    else:
        buf += data.draw(st.binary(min_size=1, max_size=40))
        buf[2:4] = len(buf).to_bytes(2, "big")
    events = core.receive(bytes(buf), DM_TO, LISTENER, 0.5)
    assert all(isinstance(e, PacketDropped) for e in events), events
    # The untouched answer still counts once: the request stayed in flight.
    (ev,) = core.receive(answer, DM_TO, LISTENER, 0.6)
    want = DisconnectAcked if answer[0] == Code.DISCONNECT_ACK else DisconnectNaked
    assert isinstance(ev, want)
