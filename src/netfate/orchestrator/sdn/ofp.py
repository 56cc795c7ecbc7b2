"""Flow and group specs <-> os-ken OpenFlow 1.3 objects.

os-ken has no type information, so every call into it that builds or reads a
message lives here, behind typed functions. Everything else in the package
works on `FlowSpec` / `GroupSpec` values.

Match values on the wire vs in a spec:

    spec "10.1.0.0/16"        <-> os-ken ("10.1.0.0", "255.255.0.0")
    spec "10.1.0.1"           <-> os-ken "10.1.0.1"
    spec "02:00:00:00:00:0a"  <-> os-ken "02:00:00:00:00:0a" (lower case both sides)
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from netfate.orchestrator.sdn.compile import (
    Action,
    FlowSpec,
    GroupSpec,
    Match,
    MatchValue,
    Output,
    SetField,
    ToController,
    ToGroup,
)
from netfate.orchestrator.sdn.reconcile import FlowEntry

log = logging.getLogger(__name__)

_MASKABLE = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}
ALL_COOKIES = 0xFFFF_FFFF_FFFF_FFFF


def _to_wire(key: str, value: MatchValue) -> Any:
    if key in _MASKABLE and isinstance(value, str) and "/" in value:
        net = ipaddress.IPv4Network(value)
        return (str(net.network_address), str(net.netmask))
    return value


def _from_wire(key: str, value: Any) -> MatchValue:
    if isinstance(value, tuple) and key in _MASKABLE:
        try:
            net = ipaddress.IPv4Network(f"{value[0]}/{value[1]}", strict=False)
        except ValueError:
            return f"{value[0]}/{value[1]}"  # a non-contiguous mask: never equal to a spec
        return str(net.network_address) if net.prefixlen == 32 else str(net)
    if isinstance(value, tuple):
        return "/".join(str(v) for v in value)
    if isinstance(value, int | str):
        return value
    return str(value)


def match_to_ofp(match: Match) -> Any:
    return parser.OFPMatch(**{k: _to_wire(k, v) for k, v in match})


def match_from_ofp(m: Any) -> Match:
    return tuple(sorted((str(k), _from_wire(str(k), v)) for k, v in m.items()))


def actions_to_ofp(actions: Iterable[Action]) -> list[Any]:
    out: list[Any] = []
    for a in actions:
        if isinstance(a, Output):
            out.append(parser.OFPActionOutput(a.port, 0))
        elif isinstance(a, SetField):
            out.append(parser.OFPActionSetField(**{a.field: _to_wire(a.field, a.value)}))
        elif isinstance(a, ToGroup):
            out.append(parser.OFPActionGroup(a.group_id))
        else:
            out.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, a.max_len))
    return out


def action_from_ofp(a: Any) -> Action | None:
    """None for an action the compiler never emits (the flow is then foreign/stale)."""
    if isinstance(a, parser.OFPActionOutput):
        if a.port == ofp.OFPP_CONTROLLER:
            return ToController(int(a.max_len))
        return Output(int(a.port))
    if isinstance(a, parser.OFPActionSetField):
        return SetField(str(a.key), _from_wire(str(a.key), a.value))
    if isinstance(a, parser.OFPActionGroup):
        return ToGroup(int(a.group_id))
    return None


def _instructions(actions: Sequence[Action]) -> list[Any]:
    if not actions:
        return []  # no instruction: drop
    return [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions_to_ofp(actions))]


def actions_from_instructions(instructions: Iterable[Any]) -> tuple[Action, ...] | None:
    acts: list[Action] = []
    for ins in instructions:
        if not isinstance(ins, parser.OFPInstructionActions) or ins.type != ofp.OFPIT_APPLY_ACTIONS:
            return None
        for a in ins.actions:
            got = action_from_ofp(a)
            if got is None:
                return None
            acts.append(got)
    return tuple(acts)


def _action_text(a: Action) -> str:
    if isinstance(a, Output):
        return "output:IN_PORT" if a.port == ofp.OFPP_IN_PORT else f"output:{a.port}"
    if isinstance(a, SetField):
        return f"set_field:{a.value}->{a.field}"
    if isinstance(a, ToGroup):
        return f"group:{a.group_id:#x}"
    return "CONTROLLER"


def actions_text(actions: Iterable[Action] | None) -> str:
    if actions is None:
        return "(foreign actions)"
    return ",".join(_action_text(a) for a in actions) or "drop"


def flow_entry_from_stats(stat: Any) -> FlowEntry:
    match = match_from_ofp(stat.match)
    actions = actions_from_instructions(stat.instructions)
    spec = None
    if actions is not None:
        spec = FlowSpec(int(stat.priority), match, actions, int(stat.cookie), int(stat.table_id))
    return FlowEntry(
        spec=spec,
        cookie=int(stat.cookie),
        table=int(stat.table_id),
        priority=int(stat.priority),
        match=match,
        packets=int(stat.packet_count),
        bytes=int(stat.byte_count),
        duration_s=float(stat.duration_sec) + float(stat.duration_nsec) / 1e9,
        idle_timeout=int(stat.idle_timeout),
        text_actions=actions_text(actions),
    )


def group_from_desc(stat: Any) -> GroupSpec | None:
    if stat.type != ofp.OFPGT_ALL:
        return None
    buckets: list[tuple[Action, ...]] = []
    for b in stat.buckets:
        acts: list[Action] = []
        for a in b.actions:
            got = action_from_ofp(a)
            if got is None:
                return None
            acts.append(got)
        buckets.append(tuple(acts))
    # Group descriptions carry no cookie; ownership is by group id range.
    return GroupSpec(int(stat.group_id), tuple(buckets), 0)


# --- messages -----------------------------------------------------------------


def flow_add(dp: Any, f: FlowSpec, idle_timeout: int = 0, hard_timeout: int = 0) -> Any:
    return parser.OFPFlowMod(
        dp,
        cookie=f.cookie,
        table_id=f.table,
        command=ofp.OFPFC_ADD,
        idle_timeout=idle_timeout,
        hard_timeout=hard_timeout,
        priority=f.priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=match_to_ofp(f.match),
        instructions=_instructions(f.actions),
    )


def flow_delete_strict(dp: Any, table: int, priority: int, match: Match, cookie: int) -> Any:
    return parser.OFPFlowMod(
        dp,
        cookie=cookie,
        cookie_mask=ALL_COOKIES,
        table_id=table,
        command=ofp.OFPFC_DELETE_STRICT,
        priority=priority,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        match=match_to_ofp(match),
    )


def group_mod(dp: Any, g: GroupSpec, command: str) -> Any:
    cmd = {"add": ofp.OFPGC_ADD, "modify": ofp.OFPGC_MODIFY, "delete": ofp.OFPGC_DELETE}[command]
    buckets = (
        []
        if command == "delete"
        else [parser.OFPBucket(actions=actions_to_ofp(b)) for b in g.buckets]
    )
    return parser.OFPGroupMod(dp, cmd, ofp.OFPGT_ALL, g.group_id, buckets)


def flow_stats_request(dp: Any) -> Any:
    return parser.OFPFlowStatsRequest(
        dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0, parser.OFPMatch()
    )


def group_desc_request(dp: Any) -> Any:
    return parser.OFPGroupDescStatsRequest(dp, 0)


def port_stats_request(dp: Any) -> Any:
    return parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY)


def barrier_request(dp: Any) -> Any:
    return parser.OFPBarrierRequest(dp)


def packet_out_table(dp: Any, in_port: int, data: bytes) -> Any:
    """Re-inject a packet into the flow table, as if it had just arrived."""
    return parser.OFPPacketOut(
        dp,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=in_port,
        actions=[parser.OFPActionOutput(ofp.OFPP_TABLE, 0)],
        data=data,
    )


def packet_out_port(dp: Any, port: int, data: bytes) -> Any:
    return parser.OFPPacketOut(
        dp,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port, 0)],
        data=data,
    )


def port_stats_to_json(stat: Any) -> dict[str, Any]:
    return {
        "port_no": int(stat.port_no),
        "rx_packets": int(stat.rx_packets),
        "tx_packets": int(stat.tx_packets),
        "rx_bytes": int(stat.rx_bytes),
        "tx_bytes": int(stat.tx_bytes),
        "rx_dropped": int(stat.rx_dropped),
        "tx_dropped": int(stat.tx_dropped),
    }


def serialize(dp: Any, msgs: Iterable[Any]) -> tuple[bytes, list[int]]:
    """Serialize messages back to back (one socket write for many flow mods)."""
    buf = bytearray()
    xids: list[int] = []
    for m in msgs:
        xids.append(int(dp.set_xid(m)))
        m.serialize()
        buf += m.buf
    return bytes(buf), xids


def next_xid(dp: Any) -> int:
    """A fresh transaction id from the datapath's counter (as Datapath.set_xid does)."""
    dp.xid = (int(dp.xid) + 1) & 0xFFFFFFFF
    return int(dp.xid)


def message_xid(msg: Any) -> int:
    return int(msg.xid)


def is_more(msg: Any) -> bool:
    return bool(msg.flags & ofp.OFPMPF_REPLY_MORE)


def error_text(msg: Any) -> str:
    return f"OFPT_ERROR type={msg.type} code={msg.code} xid={msg.xid}"


# --- events ---------------------------------------------------------------------


def port_came_up(msg: Any) -> int | None:
    """The port an OFPT_PORT_STATUS says was added or changed and is up (link up,
    not disabled, a numbered port, not a reserved one); None otherwise."""
    desc = msg.desc
    if (
        msg.reason in (ofp.OFPPR_ADD, ofp.OFPPR_MODIFY)
        and not desc.state & ofp.OFPPS_LINK_DOWN
        and not desc.config & ofp.OFPPC_PORT_DOWN
        and 0 < desc.port_no < ofp.OFPP_MAX
    ):
        return int(desc.port_no)
    return None


def packet_in_fields(msg: Any) -> tuple[int, bytes]:
    """(in_port, frame) of a packet-in."""
    return int(msg.match["in_port"]), bytes(msg.data)
