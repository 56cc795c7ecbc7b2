"""The configuration of a Personal Network's virtual home gateway (vHG, __init__.py),
as a schema the API and the agent check before the function starts: what the
sharing service gives it (services/sharing/workflow.start_vhg): the PN's subnet,
its DHCP pool inside it, the node's gateway, and the ports opened into the PN."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from netfate.vnf.configs import IFNAME, FunctionConfig, IPv4, IPv4Prefix, Port

MAX_ALLOW = 256


class AllowConfig(FunctionConfig):
    """Forwarded traffic into the PN that is let in (to one device, or to any)."""

    proto: Literal["tcp", "udp"] = "tcp"
    port: Port
    to: IPv4 | None = None


class VhgConfig(FunctionConfig):
    pn: str | None = Field(default=None, max_length=254, description="The PN (its email)")
    subnet: IPv4Prefix = Field(description="The PN's LAN")
    dhcp_first: IPv4 = Field(description="The DHCP pool's first address")
    dhcp_last: IPv4 = Field(description="The DHCP pool's last address")
    upstream_gateway: IPv4 | None = Field(default=None, description="The node's LAN address")
    allow: list[AllowConfig] = Field(default_factory=list, max_length=MAX_ALLOW)
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
