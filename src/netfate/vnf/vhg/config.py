"""The configuration of a Personal Network's virtual home gateway (vHG, __init__.py),
as a schema the API and the agent check before the function starts: what the
sharing service gives it (services/sharing/workflow.start_vhg, and the PN's gateway
settings, services/sharing/gateway.py): the PN's subnet, its DHCP pool inside it,
the node's gateway, the ports opened into the PN and the ports forwarded to it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from netfate.vnf.configs import IFNAME, FunctionConfig, IPv4, IPv4Prefix, Port

MAX_ALLOW = 256
MAX_FORWARDS = 256
MAX_STATIC = 64
MAC = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"
HOSTNAME = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"

Loc = tuple[str | int, ...]


class AllowConfig(FunctionConfig):
    """Forwarded traffic into the PN that is let in (to one device, or to any)."""

    proto: Literal["tcp", "udp"] = "tcp"
    port: Port
    to: IPv4 | None = None


class ForwardConfig(FunctionConfig):
    """A port forward: what reaches the vHG's own address from outside the PN on
    `port` is sent (DNAT) to `to`:`to_port` in the PN, and let through its firewall."""

    proto: Literal["tcp", "udp"] = "tcp"
    port: Port = Field(description="The external port, on the vHG's address")
    to: IPv4 = Field(description="The PN device's address")
    to_port: Port | None = Field(default=None, description="The device's port (default: port)")


class StaticLeaseConfig(FunctionConfig):
    """A static DHCP lease (a reservation): dnsmasq always gives `mac` the address
    `ip` (its dhcp-host), in the pool or not."""

    mac: str = Field(pattern=MAC, description="The device's MAC address")
    ip: IPv4 = Field(description="The address it always gets, in the PN")
    name: str | None = Field(default=None, pattern=HOSTNAME, description="Its host name")


def rule_problems(
    subnet: str,
    forwards: Iterable[Mapping[str, Any]],
    allow: Iterable[Mapping[str, Any]] = (),
    static: Iterable[Mapping[str, Any]] = (),
) -> dict[Loc, str]:
    """What is wrong with well-typed rules against the PN's subnet, keyed by where:
    an address outside the subnet (or its network or broadcast address), an
    external port forwarded twice for one protocol, and a static lease's MAC or
    address given twice."""
    net = IPv4Network(subnet)
    out: dict[Loc, str] = {}

    def host(kind: str, i: int, to: Any) -> None:
        if to is None:
            return
        a = IPv4Address(str(to))
        if a not in net:
            out[(kind, i, "to")] = f"{a} is not in the PN's subnet {net}"
        elif net.prefixlen < 31 and a in (net.network_address, net.broadcast_address):
            out[(kind, i, "to")] = f"{a} is not a host address of {net}"

    seen: dict[tuple[str, int], int] = {}
    for i, f in enumerate(forwards):
        host("forwards", i, f.get("to"))
        key = (str(f.get("proto", "tcp")), int(f["port"]))
        if key in seen:
            out[("forwards", i, "port")] = (
                f"{key[0]} port {key[1]} is already forwarded (forwards[{seen[key]}])"
            )
        seen.setdefault(key, i)
    for i, a in enumerate(allow):
        host("allow", i, a.get("to"))
    macs: dict[str, int] = {}
    ips: dict[str, int] = {}
    for i, st in enumerate(static):
        before = len(out)
        host("static", i, st.get("ip"))
        if len(out) > before:  # keyed "to" by host(): a static lease's key is "ip"
            out[("static", i, "ip")] = out.pop(("static", i, "to"))
        mac, ip = str(st.get("mac", "")).lower(), str(st.get("ip", ""))
        if mac in macs:
            out[("static", i, "mac")] = f"{mac} already has a static lease (static[{macs[mac]}])"
        elif ip in ips:
            out[("static", i, "ip")] = f"{ip} is already static[{ips[ip]}]'s"
        macs.setdefault(mac, i)
        ips.setdefault(ip, i)
    return out


class VhgConfig(FunctionConfig):
    pn: str | None = Field(default=None, max_length=254, description="The PN (its email)")
    subnet: IPv4Prefix = Field(description="The PN's LAN")
    dhcp_first: IPv4 = Field(description="The DHCP pool's first address")
    dhcp_last: IPv4 = Field(description="The DHCP pool's last address")
    upstream_gateway: IPv4 | None = Field(default=None, description="The node's LAN address")
    allow: list[AllowConfig] = Field(default_factory=list, max_length=MAX_ALLOW)
    static: list[StaticLeaseConfig] = Field(default_factory=list, max_length=MAX_STATIC)
    # validate_default: the check of every rule's address runs with no forwards too
    forwards: list[ForwardConfig] = Field(
        default_factory=list, max_length=MAX_FORWARDS, validate_default=True
    )
    ifname: str = Field(default="eth0", pattern=IFNAME)
    lease_seconds: int = Field(default=3600, ge=120, le=365 * 86400)

    @field_validator("dhcp_first", "dhcp_last")
    @classmethod
    def _in_subnet(cls, v: str, info: ValidationInfo) -> str:
        a = IPv4Address(v)
        subnet = info.data.get("subnet")
        if subnet is not None and a not in IPv4Network(subnet):
            raise ValueError(f"{a} is not in the subnet {subnet}")
        first = info.data.get("dhcp_first")
        if info.field_name == "dhcp_last" and first is not None and a < IPv4Address(first):
            raise ValueError(f"{a} is below dhcp_first {first}")
        return v

    @field_validator("forwards")
    @classmethod
    def _forwards(cls, v: list[ForwardConfig], info: ValidationInfo) -> list[ForwardConfig]:
        subnet = info.data.get("subnet")
        allow = info.data.get("allow") or []
        static = info.data.get("static") or []
        if subnet is not None:
            problems = rule_problems(
                subnet,
                [f.model_dump() for f in v],
                [a.model_dump() for a in allow],
                [st.model_dump() for st in static],
            )
            if problems:
                (kind, i, key), msg = next(iter(problems.items()))
                raise ValueError(f"{kind}[{i}].{key}: {msg}")
        return v
