"""A Personal Network's gateway settings (issue 15 §2): what its owner sets on the
"Gateway settings" page, like a home router's: the LAN's DHCP pool and lease time,
static DHCP leases, port forwards into the PN and firewall allow rules.

The settings are kept on the PN (`PersonalNetworkRow.gateway`, migration
0019_gateway), so they exist before the PN has a vHG and outlive it: `start_vhg`
builds the vHG's configuration from them. A change reaches a live vHG the
platform's way (nfv.reconfigure_instance: the instance's desired configuration;
its agent asks the function to take it in place, vnf/vhg `configure`). Like the
workflow, nothing here commits or talks to an agent; a change returns the nodes
touched.

Checked before anything changes, each problem keyed by where it is in the
request (``("dhcp", "first")``, ``("forwards", 2, "to")``): a pool outside the
PN's host addresses or over the node's gateway, an address of a rule outside the
PN, an external port forwarded twice for one protocol, a static lease's MAC or
address given twice, or its address the node's or one in use; then the vHG's own schema
(vnf/vhg/config.py) on the whole configuration, as the agent will check it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.model.lifecycle import LIVE
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.store.events import record
from netfate.store.tables import InstanceRow, LanRow
from netfate.vnf.vhg.config import Loc, VhgConfig, rule_problems

from .events import GatewaySettingsChanged
from .tables import PersonalNetworkRow

DHCP_FIRST, DHCP_LAST = 100, 149
"""The default pool (host numbers within the PN's subnet); aliases never come from it."""
LEASE_SECONDS = 3600
RULES = ("forwards", "allow", "static")
"""The settings that are lists (a part left out of a change keeps its own)."""
# Where each of the vHG configuration's keys is in a gateway request.
_KEYS: dict[str, Loc] = {
    "dhcp_first": ("dhcp", "first"),
    "dhcp_last": ("dhcp", "last"),
    "lease_seconds": ("dhcp", "lease_seconds"),
}


def rule_spec(text: str, forward: bool) -> dict[str, Any]:
    """A rule as a person types it: a forward ``tcp/8080=192.168.1.20:80`` (the
    device's port defaults to the external one), an allow rule ``udp/9001`` or
    ``tcp/22=192.168.1.20``. ValueError saying what is wrong; the API checks the rest."""
    head, _, target = text.strip().partition("=")
    proto, sep, port = head.partition("/")
    if not sep or proto not in ("tcp", "udp") or not port.isdigit() or len(port) > 5:
        raise ValueError(f"{text[:64]!r}: PROTO/PORT first, PROTO tcp or udp")
    out: dict[str, Any] = {"proto": proto, "port": int(port)}
    to, _, to_port = target.partition(":")
    if forward and not to:
        raise ValueError(f"{text[:64]!r}: a forward needs =ADDRESS[:PORT]")
    if to:
        out["to"] = to
    if to_port:
        if not forward or not to_port.isdigit() or len(to_port) > 5:
            raise ValueError(f"{text[:64]!r}: only a forward has a device port, a number")
        out["to_port"] = int(to_port)
    return out


def rule_text(rule: Mapping[str, Any], forward: bool) -> str:
    """The other way: ``tcp/8080=192.168.1.20:80``, ``udp/9001`` (any device)."""
    head = f"{rule.get('proto', 'tcp')}/{rule['port']}"
    if forward:
        return f"{head}={rule['to']}:{rule.get('to_port') or rule['port']}"
    return f"{head}={rule['to']}" if rule.get("to") else f"{head} (any device)"


class Invalid(ValueError):
    """Settings that were refused; `problems` maps each place to what is wrong there."""

    def __init__(self, problems: Mapping[Loc, str]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, k))}: {v}" for k, v in problems.items()))
        self.problems = dict(problems)


def _vhg(session: Session, pn: PersonalNetworkRow) -> InstanceRow | None:
    inst = session.get(InstanceRow, pn.vhg_instance) if pn.vhg_instance else None
    live = inst is not None and inst.state in {s.value for s in LIVE}
    return inst if live else None


def node_gateway(session: Session, pn: PersonalNetworkRow) -> str | None:
    """The node's address on the PN's LAN (the vHG's upstream)."""
    lan = session.scalars(
        select(LanRow).where(LanRow.node == pn.node, LanRow.subnet == pn.subnet)
    ).first()
    if lan is None:  # a LAN given as another spelling: the node's first, as start_vhg did
        lan = session.scalars(select(LanRow).where(LanRow.node == pn.node)).first()
    return lan.gateway if lan is not None else None


def settings(session: Session, pn: PersonalNetworkRow) -> dict[str, Any]:
    """The PN's gateway settings in the vHG's own keys: stored ones, else what its
    running vHG was given, else the defaults. Reads only."""
    if pn.gateway:
        return {"static": [], **pn.gateway}  # stored before static leases: none
    net = ipaddress.IPv4Network(pn.subnet)
    out: dict[str, Any] = {
        "dhcp_first": str(net.network_address + DHCP_FIRST),
        "dhcp_last": str(net.network_address + DHCP_LAST),
        "lease_seconds": LEASE_SECONDS,
        "forwards": [],
        "allow": [],
        "static": [],
    }
    inst = _vhg(session, pn)
    if inst is not None:
        out.update({k: inst.config[k] for k in out if k in (inst.config or {})})
    return out


def vhg_config(session: Session, pn: PersonalNetworkRow) -> dict[str, Any]:
    """The configuration of the PN's vHG: its LAN, its upstream and its settings."""
    return {
        "pn": pn.email,
        "subnet": str(ipaddress.IPv4Network(pn.subnet)),
        "upstream_gateway": node_gateway(session, pn),
        **settings(session, pn),
    }


def view(session: Session, pn: PersonalNetworkRow) -> dict[str, Any]:
    """What the settings page shows: the LAN, the vHG, DHCP, forwards and firewall."""
    s = settings(session, pn)
    inst = _vhg(session, pn)
    return {
        "pn": pn.email,
        "node": pn.node,
        "lan": {"subnet": pn.subnet, "node_gateway": node_gateway(session, pn)},
        "vhg": None
        if inst is None
        else {"instance": inst.id, "state": inst.state, "address": inst.ip},
        "dhcp": {"first": s["dhcp_first"], "last": s["dhcp_last"],
                 "lease_seconds": s["lease_seconds"]},
        "forwards": [dict(f) for f in s.get("forwards", [])],
        "allow": [dict(a) for a in s.get("allow", [])],
        "static": [dict(st) for st in s.get("static", [])],
    }  # fmt: skip


def _problems(
    pn: PersonalNetworkRow, cfg: dict[str, Any], used: Collection[ipaddress.IPv4Address]
) -> dict[Loc, str]:
    net = ipaddress.IPv4Network(pn.subnet)
    out: dict[Loc, str] = {}
    try:
        first, last = (ipaddress.IPv4Address(cfg[k]) for k in ("dhcp_first", "dhcp_last"))
    except ValueError as e:  # the route's schema says which; a caller's may not
        return {("dhcp",): str(e)}
    for key, a in (("dhcp_first", first), ("dhcp_last", last)):
        if a not in net:
            out[_KEYS[key]] = f"{a} is not in the PN's subnet {net}"
        elif a in (net.network_address, net.broadcast_address):
            out[_KEYS[key]] = f"{a} is not a host address of {net}"
    if not out and last < first:
        out[_KEYS["dhcp_last"]] = f"{last} is below the pool's first address {first}"
    gw = cfg.get("upstream_gateway")
    if not out and gw and first <= ipaddress.IPv4Address(gw) <= last:
        out[_KEYS["dhcp_first"]] = f"the pool {first}-{last} holds the node's address {gw}"
    if not out and (inside := sorted(a for a in used if first <= a <= last)):
        out[_KEYS["dhcp_first"]] = (
            f"the pool {first}-{last} holds {inside[0]}, which the PN's gateway or a share uses"
        )
    static = cfg.get("static", [])
    out.update(rule_problems(str(net), cfg.get("forwards", []), cfg.get("allow", []), static))
    for i, st in enumerate(static):
        if ("static", i, "ip") in out:
            continue
        a = ipaddress.IPv4Address(str(st["ip"]))
        if gw and a == ipaddress.IPv4Address(gw):
            out[("static", i, "ip")] = f"{a} is the node's address"
        elif a in used:
            out[("static", i, "ip")] = f"{a} is in use (the PN's gateway, an instance or a share)"
    if out:
        return out
    try:
        VhgConfig.model_validate(cfg)
    except ValidationError as e:
        for err in e.errors(include_url=False):
            loc = tuple(err["loc"])
            out[_KEYS.get(str(loc[0]), loc[:1]) + loc[1:] if loc else ()] = err["msg"]
    return out


def update(
    session: Session,
    pn: PersonalNetworkRow,
    changes: Mapping[str, Any],
    by: str,
    used: Collection[ipaddress.IPv4Address] = (),
) -> set[str]:
    """New settings: `changes` holds any of dhcp_first, dhcp_last, lease_seconds,
    forwards, allow (the others keep theirs); `used`: addresses a pool must not hold.
    Invalid (keyed) if any is refused, and then nothing changed. A live vHG is
    reconfigured; returns the nodes touched."""
    cfg = {**vhg_config(session, pn), **changes}
    problems = _problems(pn, cfg, used)
    if problems:
        raise Invalid(problems)
    new = {k: cfg[k] for k in ("dhcp_first", "dhcp_last", "lease_seconds", *RULES)}
    if new == settings(session, pn) and pn.gateway:
        return set()
    pn.gateway = new
    touched: set[str] = set()
    inst = _vhg(session, pn)
    if inst is not None and {**inst.config, **new} != inst.config:
        _, touched = nfv.reconfigure_instance(session, inst.id, {**inst.config, **new})
    record(
        session,
        GatewaySettingsChanged(
            pn.email, by, [new["dhcp_first"], new["dhcp_last"]], new["lease_seconds"],
            len(new["forwards"]), len(new["allow"]), inst.id if inst is not None else None,
        ),
        readers=(pn.email,),
    )  # fmt: skip
    return touched
