"""The hand-packed flow-mods are byte-identical to os-ken's for every flow the compiler emits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from netfate.orchestrator.sdn import frames, ofp, wire
from netfate.orchestrator.sdn.compile import FlowSpec, Output, SetField, compile_intents
from netfate.orchestrator.sdn.intents import parse_intent
from netfate.proto.arp import reply as arp_reply
from sdn_fixtures import make_view


class _DP:
    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser
    xid = 0

    def set_xid(self, m: Any) -> int:
        self.xid += 1
        m.set_xid(self.xid)
        return self.xid


def _all_flows() -> list[FlowSpec]:
    intents = [
        parse_intent(d)
        for d in (
            {"kind": "connectivity", "id": "c", "a": "host:alice", "b": "host:bob"},
            {"kind": "connectivity", "id": "n", "a": "host:alice", "b": "subnet:10.9.0.0/16@pe"},
            {
                "kind": "steering",
                "id": "s",
                "host": "bob",
                "chain": ["fw1", "fw2"],
                "to": "host:server",
            },
            {
                "kind": "tunnel",
                "id": "t",
                "a": "host:cam",
                "b": "host:server",
                "protocol": "udp",
                "port": 3240,
            },
            {"kind": "tunnel", "id": "i", "a": "host:cam", "b": "host:alice", "protocol": "icmp"},
            {
                "kind": "replication",
                "id": "r",
                "source": "host:server",
                "port": 5004,
                "dst_ip": "10.0.0.99",
                "targets": ["host:alice", "host:bob"],
            },
        )
    ]
    res = compile_intents(make_view(), intents)
    assert not res.errors and not res.pending
    return sorted({f for fs in res.flows.values() for f in fs}, key=repr)


def test_flow_add_bytes_match_os_ken() -> None:
    flows = _all_flows()
    assert len(flows) > 50
    for f in flows:
        dp = _DP()
        mine = wire.flow_add(1, f)
        ref, _ = ofp.serialize(dp, [ofp.flow_add(dp, f)])
        assert mine == ref, f


def test_flow_delete_strict_bytes_match_os_ken() -> None:
    for f in _all_flows()[:40]:
        dp = _DP()
        mine = wire.flow_delete_strict(1, f.table, f.priority, f.match, f.cookie)
        ref, _ = ofp.serialize(
            dp, [ofp.flow_delete_strict(dp, f.table, f.priority, f.match, f.cookie)]
        )
        assert mine == ref, f


def test_unknown_fields_are_refused_not_guessed() -> None:
    with pytest.raises(wire.UnsupportedField):
        wire.flow_add(1, FlowSpec(1, (("vlan_vid", 5),), (Output(1),), 0))
    with pytest.raises(wire.UnsupportedField):
        wire.flow_add(1, FlowSpec(1, (), (SetField("vlan_vid", 5),), 0))
    with pytest.raises(wire.UnsupportedField):
        wire.flow_add(1, FlowSpec(1, (("in_port", "x"),), (), 0))


def test_packet_parse_matches_os_ken_packets() -> None:
    from os_ken.lib.packet import arp, ethernet, ipv4, packet, udp

    def build(*protos: Any) -> bytes:
        p = packet.Packet()
        for x in protos:
            p.add_protocol(x)
        p.serialize()
        return bytes(p.data)

    req = build(
        ethernet.ethernet("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", 0x0806),
        arp.arp(
            opcode=1,
            src_mac="02:00:00:00:00:0a",
            src_ip="10.0.0.10",
            dst_mac="00:00:00:00:00:00",
            dst_ip="10.0.0.5",
        ),
    )
    got = frames.parse_packet(req)
    assert got == frames.PacketInfo(
        "02:00:00:00:00:0a", "ff:ff:ff:ff:ff:ff", 0x0806, "10.0.0.10", 1, "10.0.0.5"
    )
    dgram = build(
        ethernet.ethernet("02:00:00:00:00:05", "02:00:00:00:00:0a", 0x0800),
        ipv4.ipv4(src="10.0.0.10", dst="10.0.0.5", proto=17),
        udp.udp(1, 2),
    )
    assert frames.parse_packet(dgram) == frames.PacketInfo(
        "02:00:00:00:00:0a", "02:00:00:00:00:05", 0x0800, "10.0.0.10"
    )
    # Truncated or foreign frames are not errors.
    for junk in (b"", b"\x01" * 13, req[:20], dgram[:20]):
        info = frames.parse_packet(junk)
        assert info is None or info.ip is None
    reply = arp_reply(
        asker_mac="02:00:00:00:00:0a",
        asker_ip="10.0.0.10",
        target_mac="02:00:00:00:00:05",
        target_ip="10.0.0.5",
    )
    assert frames.parse_packet(reply) == frames.PacketInfo(
        "02:00:00:00:00:05", "02:00:00:00:00:0a", 0x0806, "10.0.0.5", 2, "10.0.0.10"
    )


def test_proxy_arp_replies_are_os_kens_bytes() -> None:
    from os_ken.lib.packet import arp, ether_types, ethernet, packet

    asker_mac, asker_ip = "02:00:00:00:00:0a", "10.0.0.10"
    target_mac, target_ip = "02:4e:46:00:00:01", "10.0.0.5"
    ref = packet.Packet()
    ref.add_protocol(
        ethernet.ethernet(dst=asker_mac, src=target_mac, ethertype=ether_types.ETH_TYPE_ARP)
    )
    ref.add_protocol(
        arp.arp(opcode=arp.ARP_REPLY, src_mac=target_mac, src_ip=target_ip,
                dst_mac=asker_mac, dst_ip=asker_ip)
    )  # fmt: skip
    ref.serialize()
    got = arp_reply(
        asker_mac=asker_mac, asker_ip=asker_ip, target_mac=target_mac, target_ip=target_ip
    )
    assert got == bytes(ref.data) and len(got) == 60


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_packet_parse_never_raises_on_junk(data: bytes) -> None:
    info = frames.parse_packet(data)
    assert info is None or len(info.eth_src) == 17


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_endpoint_parse_raises_only_value_error(text: str) -> None:
    from netfate.orchestrator.sdn.intents import Endpoint

    try:
        ep = Endpoint.parse(text)
    except ValueError:
        return
    assert Endpoint.parse(str(ep)) == ep
