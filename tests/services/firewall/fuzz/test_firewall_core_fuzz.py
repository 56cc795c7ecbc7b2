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
from netfate.services.firewall.core import RadiusCore
from netfate.services.firewall.disconnect import DisconnectAcked, DisconnectNaked
from netfate.services.firewall.nas_sessions import ListenerKey
from radius_fixtures import (
    CORE_DM_TO,
    CORE_LISTENER,
    CORE_NAS,
    CORE_SECRET,
    dm_job,
    mutated,
    radius_core,
)

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KNOWN = (AccessRequested, AccountingReceived, PacketDropped)


def _core_with_request(ack: bool) -> tuple[RadiusCore, bytes]:
    """A core with one Disconnect-Request in flight to the NAS, and the NAS's ACK
    (or NAK) to it."""
    core = radius_core()
    core.dm.send([dm_job()], {CORE_LISTENER}, 0.0, 0.0)
    ((_, wire, _),) = core.datagrams_to_send()
    das = DasCore({CORE_LISTENER[0]: CORE_SECRET})
    (req,) = das.receive(wire, (CORE_LISTENER[0], CORE_LISTENER[1]), 0.0, 0.0)
    assert isinstance(req, DisconnectRequested)
    return core, das.ack(req) if ack else das.nak(req, ErrorCause.ADMINISTRATIVELY_PROHIBITED)


@SETTINGS
@given(
    st.binary(max_size=600),
    st.sampled_from([CORE_NAS, CORE_DM_TO, ("10.9.9.9", 1), ("127.0.0.1", 0)]),
    st.sampled_from([CORE_LISTENER, ("127.0.0.1", 1812, None)]),
    st.integers(0, 255),
)
def test_any_datagram_is_taken_or_dropped(
    data: bytes, peer: tuple[str, int], listener: ListenerKey, code: int
) -> None:
    core, _ = _core_with_request(ack=True)
    for buf in (data, bytes([code]) + data[1:]):
        for ev in core.receive(buf, peer, listener, 1.0):
            assert isinstance(ev, KNOWN), ev  # random bytes: no Disconnect outcome
            # Random bytes cannot carry a valid HMAC-MD5 Message-Authenticator.
            assert not isinstance(ev, AccessRequested)
        for lk, _wire, _to in core.datagrams_to_send():
            assert lk == listener  # an answer leaves by the listener it came in on
    assert core.dm.counters["acked"] == core.dm.counters["naked"] == 0


@SETTINGS
@given(st.data())
def test_altered_answer_is_never_taken(data: st.DataObject) -> None:
    ack = data.draw(st.booleans())
    core, answer = _core_with_request(ack)
    buf = mutated(data, answer, keep=(1,))  # another identifier simply matches nothing
    if buf is None:
        return
    events = core.receive(buf, CORE_DM_TO, CORE_LISTENER, 0.5)
    assert all(isinstance(e, PacketDropped) for e in events), events
    # The untouched answer still counts once: the request stayed in flight.
    (ev,) = core.receive(answer, CORE_DM_TO, CORE_LISTENER, 0.6)
    assert answer[0] == (Code.DISCONNECT_ACK if ack else Code.DISCONNECT_NAK)
    assert isinstance(ev, DisconnectAcked if ack else DisconnectNaked)
