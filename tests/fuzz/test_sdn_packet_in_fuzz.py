"""Fuzz the controller's packet-in path: any frame a host or an instance sends up, on
any port, is handled without an exception, and what the core does about it stays
within its remit (a proxy ARP reply out of the port it came in on, a short-lived
discovery flow, a host's own flows)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.orchestrator.sdn import frames
from netfate.orchestrator.sdn.core import ControllerCore
from netfate.orchestrator.sdn.intents import (
    DISCOVERY_COOKIE,
    PortView,
    ViewAndIntents,
    parse_intent,
)
from netfate.orchestrator.sdn.reports import Report
from sdn_fixtures import IP, MAC, FakeSwitch, arp_request_frame, conn, make_view, udp_frame

SEEDS = [
    arp_request_frame(MAC["fw1"], IP["fw1"], IP["fw1"]),  # an announcement
    arp_request_frame(MAC["fw1"], IP["fw1"], IP["server"]),  # proxy ARP
    arp_request_frame(MAC["alice"], IP["alice"], IP["server"]),
    udp_frame(MAC["alice"], IP["alice"], IP["server"]),
    udp_frame(MAC["carol"], "0.0.0.0", "255.255.255.255"),  # DHCP
    b"\x81\x00\x00\x05" * 5,  # a VLAN tag where the type was
]
PORTS = {"cpe1": [1, 2, 3, 4, 8], "cpe2": [1, 2, 3, 4, 7, 9], "pe": [1, 3, 5]}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    b = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
    return bytes(b[: draw(st.integers(0, len(b)))])


def _core() -> tuple[ControllerCore, dict[str, FakeSwitch]]:
    view = make_view()
    extra = {
        "cpe2": [PortView(name="ap", ofport=9, peer="host:guest"),
                 PortView(name="c2fw", ofport=7, peer="instance:fw1")],
    }  # fmt: skip
    nodes = [n.model_copy(update={"ports": [*n.ports, *extra.get(n.name, [])]}) for n in view.nodes]
    steer = {"kind": "steering", "id": "s", "host": "alice", "chain": ["fw1"], "to": "host:server"}
    reports: list[Report] = []
    core = ControllerCore(reports.append)
    core.take_view(
        ViewAndIntents(
            view=view.model_copy(update={"nodes": nodes}),
            intents=[parse_intent(steer), conn("bs", "host:bob", "host:server")],
            version="1",
        )
    )
    switches = {"cpe1": FakeSwitch(), "cpe2": FakeSwitch(), "pe": FakeSwitch()}
    for dpid in (1, 2, 3):
        core.connected(dpid)
    return core, switches


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(PORTS)),
            st.integers(0, 5),
            st.one_of(st.binary(max_size=80), mutated()),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_frame_on_any_port(frames_in: list[tuple[str, int, bytes]]) -> None:
    core, switches = _core()
    dpid = {"cpe1": 1, "cpe2": 2, "pe": 3}
    for k, (node, which, data) in enumerate(frames_in):
        port = PORTS[node][which % len(PORTS[node])]
        sw = switches[node]
        sw.now = float(k)
        core.packet_in(dpid[node], sw, port, data, float(k))
        for out_port, frame in sw.sent:
            info = frames.parse_packet(frame)
            assert out_port == port and info is not None and info.arp_op == frames.ARP_REPLY
        sw.sent.clear()
        assert all(f.cookie == DISCOVERY_COOKIE for f in sw.table())  # no batch was sent
