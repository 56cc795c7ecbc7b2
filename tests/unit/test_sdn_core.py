"""The controller's core against in-memory switches, with the time given explicitly.

Network: make_view() (cpe1 - pe - cpe2), one FakeSwitch per bridge. Each test
plays what the driver does: connect the switches, hand over the view, run the
reconcile steps and the packet-ins at chosen times, then checks what the
switches hold and what the core reported to the orchestrator.
"""

from __future__ import annotations

from typing import Any

import pytest

from netfate.orchestrator.sdn import frames
from netfate.orchestrator.sdn.brain import PARTIAL_ABOVE, SETTLE_AFTER_S
from netfate.orchestrator.sdn.compile import FlowSpec, Output, SetField, compile_intents
from netfate.orchestrator.sdn.core import (
    INSTALL_PATIENCE_S,
    NEW_PORT_S,
    VIRTUAL_ROUTER_MAC,
    ControllerCore,
)
from netfate.orchestrator.sdn.intents import (
    DISCOVERY_COOKIE,
    Intent,
    NetworkView,
    PortView,
    ViewAndIntents,
    cookie_for,
    parse_intent,
)
from netfate.orchestrator.sdn.keeper import Step, SwitchKeeper, Timers
from netfate.orchestrator.sdn.reconcile import as_entries
from netfate.orchestrator.sdn.reports import (
    FlowsRefused,
    HostSeen,
    InstanceMoved,
    Report,
    TableRead,
    VersionInstalled,
)
from netfate.orchestrator.sdn.switch import Reinject
from sdn_fixtures import IP, MAC, FakeSwitch, arp_request_frame, conn, make_view, udp_frame

DPID = {"cpe1": 1, "cpe2": 2, "pe": 3}
AS = conn("as", "host:alice", "host:server")
STEER = parse_intent(
    {"kind": "steering", "id": "s", "host": "alice", "chain": ["fw1"], "to": "host:server"}
)


def _with_port(view: NetworkView, node: str, port: PortView) -> NetworkView:
    nodes = [
        n.model_copy(update={"ports": [*n.ports, port]}) if n.name == node else n
        for n in view.nodes
    ]
    return view.model_copy(update={"nodes": nodes})


class Net:
    """Three fake switches and a core, driven by the test."""

    def __init__(self, view: NetworkView | None = None, timers: Timers | None = None) -> None:
        self.view = view or make_view()
        self.reports: list[Report] = []
        self.core = ControllerCore(self.reports.append, timers or Timers())
        self.sw = {n: FakeSwitch() for n in DPID}
        self.keepers: dict[str, SwitchKeeper] = {}

    def connect(self, node: str) -> None:
        self.keepers[node] = self.core.connected(DPID[node])

    def up(self, intents: list[Intent], now: float | None = None) -> Net:
        """Every switch connected, view version 1 taken, and synced at `now` if given."""
        for node in DPID:
            self.connect(node)
        self.take(intents, "1")
        if now is not None:
            self.sync(now)
        return self

    def take(self, intents: list[Intent], version: str) -> bool:
        return self.core.take_view(ViewAndIntents(view=self.view, intents=intents, version=version))

    def step(self, node: str, now: float) -> Step:
        self.sw[node].now = now
        return self.core.reconcile(self.keepers[node], self.sw[node], now)

    def sync(self, now: float) -> None:
        for node in DPID:
            self.step(node, now)

    def packet_in(self, node: str, in_port: int, data: bytes, now: float) -> bool:
        self.sw[node].now = now
        return self.core.packet_in(DPID[node], self.sw[node], in_port, data, now)

    def want(self, node: str) -> set[FlowSpec]:
        got = self.core.brain.desired(node)
        assert got is not None
        return got[0]

    def of(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.reports if isinstance(r, kind)]


def test_a_restarted_controller_touches_no_switch_until_the_first_view() -> None:
    net = Net()
    foreign = FlowSpec(7, (("in_port", 1),), (Output(2),), 0x1234)
    stale = FlowSpec(
        100, (("in_port", 1), ("eth_src", MAC["carol"])), (Output(2),), cookie_for("old")
    )
    for sw in net.sw.values():
        sw.flows = {f.key: (f, None) for f in (foreign, stale)}
    for node in DPID:
        net.connect(node)
    net.sync(now=0.0)
    assert all(sw.reads == 0 and not sw.batches for sw in net.sw.values())
    assert net.sw["pe"].table() == {foreign, stale}  # secure mode keeps forwarding on them
    assert net.take([AS], "1")
    net.sync(now=0.1)
    for node, sw in net.sw.items():
        # Read back and corrected: ours as the brain wants, the foreign flow left alone.
        assert sw.reads == 1
        assert sw.table() == net.want(node) | {foreign}
    assert [r.version for r in net.of(VersionInstalled)] == ["1"]
    assert {r.node for r in net.of(TableRead)} == set(DPID)


def test_installed_is_reported_once_every_switch_holds_the_version() -> None:
    net = Net().up([AS])
    net.step("cpe1", 1.0)
    net.step("pe", 1.0)
    assert not net.of(VersionInstalled)  # cpe2 does not hold it yet
    net.step("cpe2", 1.0)
    net.sync(1.1)
    assert [r.version for r in net.of(VersionInstalled)] == ["1"]
    net.take([], "2")
    net.sync(2.0)
    assert [r.version for r in net.of(VersionInstalled)] == ["1", "2"]
    assert all(sw.table() == net.want(n) for n, sw in net.sw.items())


def test_a_reconnected_switch_is_read_back_and_repaired_and_drift_waits_for_the_snapshot() -> None:
    net = Net(timers=Timers(snapshot_interval_s=2.0)).up([AS], now=10.0)
    pe = net.sw["pe"]
    # The switch restarts empty and connects again: a new session, a new keeper.
    old = net.keepers["pe"]
    pe.flows.clear()
    net.core.gone(old)
    net.connect("pe")
    assert net.keepers["pe"] is not old
    net.step("pe", 11.0)
    assert pe.reads == 2 and pe.table() == net.want("pe")
    # Between snapshots the keeper plans from what it knows: drift goes unseen...
    lost = next(iter(sorted(net.want("pe"), key=lambda f: f.priority, reverse=True)))
    del pe.flows[lost.key]
    batches = len(pe.batches)
    net.step("pe", 12.0)
    assert pe.reads == 2 and len(pe.batches) == batches and lost not in pe.table()
    # ...until the next read, which puts the lost flow back.
    net.step("pe", 13.0)
    assert pe.reads == 3 and pe.table() == net.want("pe")


def test_a_big_table_is_read_less_often_and_reported_when_it_changes_or_is_due() -> None:
    net = Net(timers=Timers(snapshot_interval_s=2.0, post_interval_s=5.0))
    net.sw["pe"].read_s = 0.5  # reading costs half a second: read every 10 s at most
    net.up([AS])
    net.step("pe", 100.0)
    assert net.keepers["pe"].next_snapshot == 110.0
    for t in (102.0, 105.0, 109.9):
        net.step("pe", t)
    assert net.sw["pe"].reads == 1
    for t in (110.0, 120.0, 130.0):  # every read reported: 5 s have passed each time
        net.step("pe", t)
    read = [r for r in net.of(TableRead) if r.node == "pe"]
    assert net.sw["pe"].reads == 4 and len(read) == 4
    # Fast reads every 2 s: a table is reported when it changed, or 5 s on.
    net.step("cpe2", 199.0)  # read (empty), its flows installed
    reported = []
    for t in range(201, 213, 2):
        before = len(net.of(TableRead))
        net.step("cpe2", float(t))
        if len(net.of(TableRead)) > before:
            reported.append(t)
    assert net.sw["cpe2"].reads == 7
    assert reported == [201, 207]  # its flows were in; then 5 s had passed


def _moved() -> Net:
    """alice, known, plugs into an anonymous port of cpe2 (ofport 9)."""
    view = _with_port(make_view(), "cpe2", PortView(name="ap", ofport=9, peer="host:guest"))
    return Net(view).up([AS], now=0.0)


def test_a_moved_host_gets_its_flows_and_its_first_packet_goes_through_them() -> None:
    net = _moved()
    first = udp_frame(MAC["alice"], IP["alice"], IP["server"])
    assert net.packet_in("cpe2", 9, first, now=20.0)
    assert net.of(HostSeen) == [
        HostSeen(node="cpe2", port="ap", ofport=9, mac=MAC["alice"], ip=IP["alice"],
                 known_as="alice")
    ]  # fmt: skip
    # More of her packets while the flows are on their way: nothing new (no report,
    # no second placement, no suppression of the packets her flows are for).
    assert not net.packet_in("cpe2", 9, first, now=20.001)
    assert len(net.of(HostSeen)) == 1
    assert not [f for f in net.sw["cpe2"].table() if f.cookie == DISCOVERY_COOKIE]
    cpe2 = net.sw["cpe2"]
    cpe2.batch_s = 0.004
    net.step("cpe2", 20.002)
    # Her flows from port 9, the packet re-injected right behind their barrier.
    assert any(("in_port", 9) in f.match for f in cpe2.batches[-1].flow_adds)
    assert cpe2.reinjected == [Reinject(9, first)]
    assert net.core.installing == {}  # done, at 20.006
    net.sync(20.01)
    assert all(sw.table() == net.want(n) for n, sw in net.sw.items())
    assert not any(
        ("in_port", 1) in f.match for f in net.sw["cpe1"].table() if f.cookie == AS.cookie
    )


def test_a_host_already_placed_is_quieted_for_a_while() -> None:
    net = _moved()
    pkt = udp_frame(MAC["alice"], IP["alice"], IP["server"])
    assert net.packet_in("cpe2", 9, pkt, now=20.0)
    net.sync(20.01)
    # Her next packet-in (after the patience) has nothing to install: her unmatched
    # traffic is dropped at the switch for `suppress_s`, then heard again.
    assert not net.packet_in("cpe2", 9, pkt, now=20.0 + INSTALL_PATIENCE_S + 0.1)
    sup = [f for f in net.sw["cpe2"].table() if f.cookie == DISCOVERY_COOKIE]
    assert [dict(f.match) for f in sup] == [{"eth_src": MAC["alice"], "in_port": 9}]
    assert sup[0].actions == ()
    net.sw["cpe2"].now = 20.0 + INSTALL_PATIENCE_S + 10.1
    assert not [f for f in net.sw["cpe2"].table() if f.cookie == DISCOVERY_COOKIE]
    assert len(net.of(HostSeen)) == 1  # reported once per (port, MAC, address)


def test_a_host_without_an_address_yet_is_listened_to() -> None:
    net = _moved()
    dhcp = udp_frame("02:00:00:00:00:99", "0.0.0.0", "255.255.255.255")
    assert not net.packet_in("cpe2", 9, dhcp, now=5.0)
    assert [r.ip for r in net.of(HostSeen)] == [None]
    assert not [f for f in net.sw["cpe2"].table() if f.cookie == DISCOVERY_COOKIE]


def test_node_links_raise_nothing() -> None:
    net = _moved()
    before = list(net.reports)
    assert not net.packet_in("pe", 1, udp_frame(MAC["alice"], IP["alice"], IP["server"]), now=1.0)
    assert not net.packet_in("cpe1", 4, udp_frame(MAC["alice"], IP["alice"], IP["server"]), now=1.0)
    assert net.reports == before
    assert not [f for f in net.sw["pe"].table() if f.cookie == DISCOVERY_COOKIE]


def _migrating() -> Net:
    """fw1 (cpe1, port 3) steers alice's traffic; its standby copy sits on cpe2 port 7."""
    view = _with_port(make_view(), "cpe2", PortView(name="c2fw", ofport=7, peer="instance:fw1"))
    return Net(view).up([STEER], now=0.0)


def _to_fw1(flows: set[FlowSpec]) -> set[int]:
    out: set[int] = set()
    for f in flows:
        if SetField("eth_dst", MAC["fw1"]) in f.actions:
            out |= {a.port for a in f.actions if isinstance(a, Output)}
    return out


def test_a_migrated_instances_gratuitous_arp_moves_the_steering_and_is_reported() -> None:
    net = _migrating()
    assert _to_fw1(net.sw["cpe1"].table()) == {3}
    garp = arp_request_frame(MAC["fw1"], IP["fw1"], IP["fw1"])
    assert net.packet_in("cpe2", 7, garp, now=50.0)
    assert not net.of(InstanceMoved)
    net.step("cpe1", 50.001)
    net.step("pe", 50.002)
    assert not net.of(InstanceMoved)  # cpe2 does not hold the new flows yet
    net.sw["cpe2"].batch_s = 0.003
    net.step("cpe2", 50.004)
    [moved] = net.of(InstanceMoved)
    assert (moved.instance, moved.node, moved.ofport) == ("fw1", "cpe2", 7)
    assert moved.install_ms == pytest.approx(7.0)  # the packet-in to cpe2's barrier reply
    assert 3 not in _to_fw1(net.sw["cpe1"].table())
    assert _to_fw1(net.sw["pe"].table()) == {2}
    net.sync(51.0)
    assert len(net.of(InstanceMoved)) == 1
    # Announcing again from where it already is changes nothing.
    assert not net.packet_in("cpe2", 7, garp, now=52.0)


@pytest.mark.parametrize("standby_port", [None, "instance:sb-1"])
def test_an_announcement_ahead_of_the_view_moves_the_steering_when_the_view_has_the_port(
    standby_port: str | None,
) -> None:
    """A migrated copy can announce itself before the view knows its port as its own
    (a warm standby's port, relabelled at the take, or one not reported yet): the
    view that gives it the port moves the steering at once, reported from the
    announcement; a view that gives the port to another instance moves nothing."""
    for owner, moves in (("instance:fw1", True), ("instance:fw2", False)):
        view = make_view()
        if standby_port is not None:
            view = _with_port(view, "cpe2", PortView(name="c2sb", ofport=7, peer=standby_port))
        net = Net(view).up([STEER], now=0.0)
        garp = arp_request_frame(MAC["fw1"], IP["fw1"], IP["fw1"])
        assert not net.packet_in("cpe2", 7, garp, now=50.0)
        net.sync(50.01)
        assert not net.of(InstanceMoved) and _to_fw1(net.sw["cpe1"].table()) == {3}
        net.view = _with_port(make_view(), "cpe2", PortView(name="c2fw", ofport=7, peer=owner))
        assert net.take([STEER], "2")
        net.sync(50.2)
        if moves:
            [moved] = net.of(InstanceMoved)
            assert (moved.instance, moved.node, moved.ofport) == ("fw1", "cpe2", 7)
            assert moved.install_ms == pytest.approx(200.0, abs=5.0)  # from the announcement
            assert 3 not in _to_fw1(net.sw["cpe1"].table())
        else:
            assert not net.of(InstanceMoved) and _to_fw1(net.sw["cpe1"].table()) == {3}
            assert net.core.brain.overrides == {}


def test_an_announcement_ahead_of_the_view_is_forgotten_after_a_while() -> None:
    from netfate.orchestrator.sdn.core import EARLY_ANNOUNCE_S

    net = Net(make_view()).up([STEER], now=0.0)
    garp = arp_request_frame(MAC["fw1"], IP["fw1"], IP["fw1"])
    assert not net.packet_in("cpe2", 7, garp, now=50.0)
    # another instance's announcement, much later, ages the first one out
    other = arp_request_frame(MAC["fw2"], IP["fw2"], IP["fw2"])
    assert not net.packet_in("cpe2", 8, other, now=50.0 + EARLY_ANNOUNCE_S + 1)
    net.view = _with_port(make_view(), "cpe2", PortView(name="c2fw", ofport=7, peer="instance:fw1"))
    assert net.take([STEER], "2")
    net.sync(60.0)
    assert not net.of(InstanceMoved) and net.core.brain.overrides == {}


def test_an_instance_cannot_pull_the_steering_to_a_port_that_is_not_its_own() -> None:
    net = _migrating()
    garp = arp_request_frame(MAC["fw1"], IP["fw1"], IP["fw1"])
    assert not net.packet_in("cpe1", 3, garp, now=1.0)  # where the view has it already
    fake = arp_request_frame(MAC["fw2"], IP["fw2"], IP["fw2"])
    assert not net.packet_in("cpe2", 7, fake, now=1.0)  # fw2's MAC on fw1's port
    assert net.core.brain.overrides == {}


def test_instances_get_proxy_arp_answers() -> None:
    net = _migrating()
    assert not net.packet_in("cpe1", 3, arp_request_frame(MAC["fw1"], IP["fw1"], IP["server"]), 2.0)
    assert not net.packet_in("cpe1", 3, arp_request_frame(MAC["fw1"], IP["fw1"], "10.9.9.9"), 2.0)
    answers = [(port, frames.parse_packet(f)) for port, f in net.sw["cpe1"].sent]
    assert [(p, i.eth_src if i else None, i.arp_op if i else None) for p, i in answers] == [
        (3, MAC["server"], 2),
        (3, VIRTUAL_ROUTER_MAC, 2),
    ]
    assert all(i is not None and i.eth_dst == MAC["fw1"] for _, i in answers)


def test_refused_flows_keep_their_intent_off_that_switch_until_the_version_changes() -> None:
    net = Net()
    net.sw["pe"].refuse = {AS.cookie}
    net.up([AS, conn("bs", "host:bob", "host:server")])
    step = net.step("pe", 1.0)
    assert step.retry_after == pytest.approx(0.4)  # the first failure in a row
    [err] = net.of(FlowsRefused)
    assert (err.node, err.intents) == ("pe", ["as"]) and err.errors
    net.step("pe", 1.5)  # read back, everything but "as"
    pe = net.sw["pe"].table()
    assert pe == {f for f in net.want("pe") if f.cookie != AS.cookie}
    assert net.keepers["pe"].failures == 0
    net.sw["pe"].refuse = set()
    net.step("pe", 2.0)
    assert AS.cookie not in {f.cookie for f in net.sw["pe"].table()}  # still kept off
    net.take([AS, conn("bs", "host:bob", "host:server")], "2")
    net.step("pe", 3.0)
    assert net.sw["pe"].table() == net.want("pe")


def test_a_silent_switch_is_backed_off_and_read_again() -> None:
    net = Net()
    net.connect("pe")
    net.take([AS], "1")
    net.sw["pe"].answering = False
    keeper = net.keepers["pe"]
    waits = []
    for t in range(3):
        with pytest.raises(RuntimeError, match="no reply"):
            net.step("pe", float(t))
        waits.append(keeper.failed())
    assert waits == [0.2, 0.4, 0.8]
    net.sw["pe"].answering = True
    assert net.step("pe", 10.0).synced and net.sw["pe"].table() == net.want("pe")


def test_a_port_the_view_does_not_know_yet_is_listened_to() -> None:
    net = Net()
    net.connect("cpe2")
    net.take([], "1")
    net.sw["cpe2"].now = 5.0
    net.core.port_up(DPID["cpe2"], net.sw["cpe2"], 9)
    net.core.port_up(DPID["cpe2"], net.sw["cpe2"], 1)  # bob's: known
    listen = [f for f in net.sw["cpe2"].table() if f.cookie == DISCOVERY_COOKIE]
    assert [dict(f.match) for f in listen] == [{"in_port": 9}]
    net.sw["cpe2"].now = 5.0 + NEW_PORT_S
    assert not [f for f in net.sw["cpe2"].table() if f.cookie == DISCOVERY_COOKIE]


def test_after_a_burst_of_moves_the_full_compile_waits_for_a_pause() -> None:
    view = _with_port(make_view(), "cpe2", PortView(name="ap", ofport=9, peer="host:guest"))
    many: list[Intent] = [
        conn(f"bg{i}", "host:bob", f"subnet:10.{100 + i}.0.0/16@pe") for i in range(PARTIAL_ABOVE)
    ]
    net = Net(view)
    net.take([*many, STEER], "1")
    brain = net.core.brain
    assert brain.host_at(MAC["alice"], "cpe2", 9, now=30.0)
    assert brain.full_due
    assert not net.core.settle(30.0 + SETTLE_AFTER_S - 0.1)  # moves may still be coming
    assert net.core.settle(30.0 + SETTLE_AFTER_S)
    full = compile_intents(view, [*many, STEER], {MAC["alice"]: ("cpe2", 9)})
    assert brain.result is not None and brain.result.flows == full.flows


def test_every_report_is_an_event_the_api_accepts() -> None:
    from netfate.orchestrator.sdn import api

    entry = as_entries([next(iter(compile_intents(make_view(), [AS]).flows["pe"]))])
    cases: list[tuple[Report, type[Any]]] = [
        (HostSeen("cpe2", "ap", 9, MAC["alice"], IP["alice"], "alice"), api.HostSeen),
        (TableRead("pe", 3, entry, [{"port_no": 1}], 2), api.FlowSnapshot),
        (FlowsRefused("pe", ["as"], ["OFPT_ERROR type=5 code=0"]), api.InstallError),
        (InstanceMoved("fw1", "cpe2", 7, 7.0004), api.InstanceMoved),
        (VersionInstalled("v1"), api.Installed),
    ]
    for report, model in cases:
        body = report.to_json(1234.5)
        parsed = model.model_validate(body)
        assert parsed.kind == body["kind"] and parsed.time == 1234.5
    snap = api.FlowSnapshot.model_validate(cases[1][0].to_json(0.0))
    assert snap.dpid == "0000000000000003" and snap.flows == [entry[0].to_json()]
    assert cases[3][0].to_json(0.0)["install_ms"] == 7.0
