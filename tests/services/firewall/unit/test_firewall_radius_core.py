"""The RADIUS server's sans-I/O core (services/firewall/core.py, disconnect.py) driven
in memory against the CORE_NAS's cores (ClientCore for its requests, DasCore for our
Disconnect-Requests): no socket, no clock, no database. And the user session table
(states.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfate.orchestrator.nfv.errors import Conflict
from netfate.proto.radius import (
    AccessRequested,
    AccountingReceived,
    AcctStatus,
    Attr,
    ClientCore,
    Code,
    DasCore,
    DisconnectRequested,
    ErrorCause,
    PacketDropped,
)
from netfate.services.firewall import policy
from netfate.services.firewall.disconnect import (
    DisconnectAcked,
    DisconnectFailed,
    DisconnectNaked,
    DisconnectSent,
    event_record,
    may_send,
)
from netfate.services.firewall.nas_sessions import ListenerKey
from netfate.services.firewall.states import (
    IllegalSessionTransition,
    UserStatus,
    check_session_transition,
)
from netfate.services.firewall.tables import FirewallUserRow
from radius_fixtures import (
    CORE_DM_TO,
    CORE_LISTENER,
    CORE_NAS,
    CORE_SECRET,
    dm_job,
    events,
    radius_core,
    radius_db,
    user_row,
)

OTHER: ListenerKey = ("127.0.0.1", 1812, None)


def test_clients_match_exact_address_before_subnets() -> None:
    core = radius_core()
    assert core.clients.secret_for("10.0.0.9") == b"another"
    assert core.clients.secret_for("10.0.0.2") == CORE_SECRET
    assert core.clients.secret_for("10.0.1.2") is None
    assert core.clients.secret_for("not an address") is None


def test_access_request_then_answer_and_a_retransmission_from_the_cache() -> None:
    core, nas = radius_core(), ClientCore(CORE_SECRET)
    _, wire = nas.access_request("alice", b"pw", [(Attr.NAS_IDENTIFIER, "cpe1")], 0.0)
    (ev,) = core.receive(wire, CORE_NAS, CORE_LISTENER, 0.0)
    assert isinstance(ev, AccessRequested) and ev.user == "alice" and ev.password == b"pw"
    assert core.datagrams_to_send() == []  # the decision is the application's
    assert core.receive(wire, CORE_NAS, CORE_LISTENER, 0.1) == []  # still deciding: no second event
    answer = core.server.accept(ev, [(Attr.SESSION_TIMEOUT, 600)])
    (got,) = nas.receive(answer, 0.2)
    assert got.response.code == Code.ACCESS_ACCEPT
    assert core.receive(wire, CORE_NAS, CORE_LISTENER, 0.3) == []  # the CORE_NAS sent it once more
    assert core.datagrams_to_send() == [(CORE_LISTENER, answer, CORE_NAS)]  # from the same listener
    assert core.counters["accepts"] == 1


def test_accounting_request_is_an_event() -> None:
    core, nas = radius_core(), ClientCore(CORE_SECRET)
    attrs = [
        (Attr.ACCT_STATUS_TYPE, int(AcctStatus.START)),
        (Attr.ACCT_SESSION_ID, "cpe1-s1"),
        (Attr.USER_NAME, "alice"),
    ]
    _, wire = nas.accounting_request(list(attrs), 0.0)
    (ev,) = core.receive(wire, CORE_NAS, CORE_LISTENER, 0.0)
    assert isinstance(ev, AccountingReceived)
    assert (ev.status, ev.session_id, ev.user) == (AcctStatus.START, "cpe1-s1", "alice")


def test_unknown_client_and_garbage_are_dropped_and_remembered() -> None:
    core, nas = radius_core(), ClientCore(CORE_SECRET)
    _, wire = nas.access_request("alice", b"pw", [], 0.0)
    (ev,) = core.receive(wire, ("10.9.9.9", 1), CORE_LISTENER, 0.0)
    assert isinstance(ev, PacketDropped) and "no RADIUS client" in ev.reason
    (ev,) = core.receive(b"\x01\x00", CORE_NAS, CORE_LISTENER, 0.0)
    assert isinstance(ev, PacketDropped)
    for i in range(60):
        core.receive(bytes([1, i]), CORE_NAS, CORE_LISTENER, 0.0)
    assert len(core.dropped) == 50  # bounded
    assert core.datagrams_to_send() == []


def test_disconnect_sent_acked_from_where_it_went_only() -> None:
    core = radius_core()
    nas = DasCore({CORE_LISTENER[0]: CORE_SECRET})
    (sent,) = core.dm.send([dm_job()], {CORE_LISTENER}, 5.0, 1_700_000_000.0)
    assert isinstance(sent, DisconnectSent)
    ((lk, wire, to),) = core.datagrams_to_send()
    assert (lk, to) == (CORE_LISTENER, CORE_DM_TO)
    (req,) = nas.receive(wire, (CORE_LISTENER[0], CORE_LISTENER[1]), 5.0, 1_700_000_000.0)
    assert isinstance(req, DisconnectRequested)
    assert (req.session_id, req.user, req.framed_ip) == ("cpe1-s1", "alice", "192.168.1.2")
    ack = nas.ack(req)
    # The same answer from another port, or on another listener: dropped.
    (ev,) = core.receive(ack, (CORE_DM_TO[0], 9999), CORE_LISTENER, 5.1)
    assert isinstance(ev, PacketDropped) and "Disconnect answer" in ev.reason
    (ev,) = core.receive(ack, CORE_DM_TO, OTHER, 5.1)
    assert isinstance(ev, PacketDropped)
    (ev,) = core.receive(ack, CORE_DM_TO, CORE_LISTENER, 5.25)
    assert isinstance(ev, DisconnectAcked) and ev.rtt_ms == 250.0
    assert core.dm.counters["sent"] == 1 and core.dm.counters["acked"] == 1
    kind, data = event_record(ev)
    assert kind == "DisconnectAcked"
    assert data == {
        "user": "alice",
        "session": "cpe1-s1",
        "nas": "cpe1",
        "to": "10.0.0.2:3799",
        "netns": "ns-pe1",
        "reason": "logged out",
        "rtt_ms": 250.0,
    }
    # Answered: nothing left to retransmit, and a second ACK matches nothing.
    assert core.dm.next_deadline() is None and core.dm.poll(100.0) == []
    (ev,) = core.receive(ack, CORE_DM_TO, CORE_LISTENER, 5.3)
    assert isinstance(ev, PacketDropped)


def test_nak_names_its_error_cause() -> None:
    core = radius_core()
    nas = DasCore({CORE_LISTENER[0]: CORE_SECRET})
    core.dm.send([dm_job()], {CORE_LISTENER}, 0.0, 0.0)
    ((_, wire, _),) = core.datagrams_to_send()
    (req,) = nas.receive(wire, (CORE_LISTENER[0], CORE_LISTENER[1]), 0.0, 0.0)
    assert isinstance(req, DisconnectRequested)
    nak = nas.nak(req, ErrorCause.SESSION_CONTEXT_NOT_FOUND)
    (ev,) = core.receive(nak, CORE_DM_TO, CORE_LISTENER, 0.1)
    assert isinstance(ev, DisconnectNaked)
    assert ev.error_cause == ErrorCause.SESSION_CONTEXT_NOT_FOUND
    kind, data = event_record(ev)
    assert kind == "DisconnectNaked" and data["detail"] == "SESSION_CONTEXT_NOT_FOUND"
    assert core.dm.counters["naked"] == 1


def test_retransmitted_then_failed_after_its_tries() -> None:
    core = radius_core(timeout=1.0, retries=2)
    core.dm.send([dm_job()], {CORE_LISTENER}, 0.0, 0.0)
    ((_, first, _),) = core.datagrams_to_send()
    assert core.dm.next_deadline() == 1.0
    assert core.dm.poll(0.5) == [] and core.datagrams_to_send() == []  # not due yet
    for t in (1.0, 2.0):
        assert core.dm.poll(t) == []
        assert core.datagrams_to_send() == [(CORE_LISTENER, first, CORE_DM_TO)]  # the same bytes
    (ev,) = core.dm.poll(3.0)
    assert isinstance(ev, DisconnectFailed) and ev.detail == "no valid answer to 3 sends"
    assert core.dm.counters["failed"] == 1 and core.dm.cores == {}
    assert core.dm.next_deadline() is None


def test_a_closed_listener_fails_the_job_at_once() -> None:
    core = radius_core()
    (ev,) = core.dm.send([dm_job(listener=OTHER)], {CORE_LISTENER}, 0.0, 0.0)
    assert isinstance(ev, DisconnectFailed) and ev.detail == "the listener is closed"
    assert core.datagrams_to_send() == [] and core.dm.counters["sent"] == 0


def test_jobs_to_one_nas_share_its_identifiers() -> None:
    core = radius_core()
    events = core.dm.send([dm_job("s1"), dm_job("s2")], {CORE_LISTENER}, 0.0, 0.0)
    assert [type(e) for e in events] == [DisconnectSent, DisconnectSent]
    wires = [w for _, w, _ in core.datagrams_to_send()]
    assert len(core.dm.cores) == 1 and wires[0][1] != wires[1][1]


def test_may_send_only_into_namespaces_or_loopback() -> None:
    assert may_send(CORE_LISTENER, "10.0.0.2")
    assert may_send(OTHER, "127.0.0.2")
    assert not may_send(OTHER, "10.0.0.2")
    assert not may_send(OTHER, "nas.example")


# --------------------------------------------------------------------------- sessions


def test_session_table_allows_login_relogin_and_release() -> None:
    on, off = UserStatus.ONLINE, UserStatus.OFFLINE
    assert check_session_transition("offline", on) is on
    assert check_session_transition("online", on) is on  # moved to another CPE
    assert check_session_transition("online", off) is off


def test_releasing_an_offline_user_is_illegal() -> None:
    with pytest.raises(IllegalSessionTransition) as e:
        check_session_transition("offline", UserStatus.OFFLINE)
    assert isinstance(e.value, Conflict) and e.value.status == 409
    assert "from 'offline' to 'offline'" in str(e.value)
    # A value the table does not know counts as offline.
    with pytest.raises(IllegalSessionTransition):
        check_session_transition("weird", UserStatus.OFFLINE)
    assert check_session_transition("weird", UserStatus.ONLINE) is UserStatus.ONLINE


def test_policy_checks_the_table(tmp_path: Path) -> None:
    """A login then a release go through; a second release is refused and changes
    nothing (no event, no Disconnect)."""
    db = radius_db(tmp_path / "s.db", "127.0.0.1", "x", [user_row("alice", "pw")])
    try:
        with db.session() as s:
            u = s.get(FirewallUserRow, "alice")
            assert u is not None and policy.on_login(s, u, "cpe1", None, "192.168.1.2").accept
            assert (u.status, u.access_node) == ("online", "cpe1")
            policy.release(s, u, "logged out")
            assert (u.status, u.access_node) == ("offline", None)
        with db.session() as s:
            u = s.get(FirewallUserRow, "alice")
            assert u is not None
            with pytest.raises(IllegalSessionTransition):
                policy.release(s, u, "again")
        assert [e["reason"] for e in events(db, "FirewallReleased")] == ["logged out"]
    finally:
        db.dispose()
