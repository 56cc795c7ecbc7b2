"""The configuration of a Virtual Presence (function.py: a kernel.KernelConfig as a
dict, with the agent's ``link_mtu``), as a schema the API and the agent check before
the function starts: what the sharing service gives each VP of a share
(services/sharing/workflow._launch). The ATT must also pass its own checks
(att.ATT: addresses inside their PNs, no alias twice), as the function makes it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from netfate.vnf.configs import IFNAME, FunctionConfig, IPv4, IPv4Iface, IPv4Prefix, Port
from netfate.vnf.virtual_presence.att import ATT

MAX_ENTRIES = 4096
"""PN2 devices one share represents (a /20 PN's worth)."""
MAX_SHARE = 0xFFFF
"""The share number names the VP's table, VNI, routing tables and marks; its MAC
derivation (kernel.KernelConfig.ei_mac) and the marks' ranges keep 16 bits of it."""
Mtu = Annotated[int, Field(ge=576, le=9000)]
"""What the topology takes for a link (model.topology) and the agent for link_mtu."""


class AttConfig(FunctionConfig):
    pn1: IPv4Prefix = Field(description="PN1's subnet (the shared device's)")
    pn2: IPv4Prefix = Field(description="PN2's subnet (where the device is imported)")
    shared_device: IPv4
    import_alias: IPv4
    entries: list[Annotated[list[IPv4], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="[VP2's alias in PN1, the PN2 device it stands for], one per device",
    )

    @model_validator(mode="after")
    def _as_the_vp_reads_it(self) -> AttConfig:
        ATT.from_dict(self.model_dump())  # ATTError (a ValueError): what the VP refuses
        return self


class VirtualPresenceConfig(FunctionConfig):
    role: Literal["vp1", "vp2"] = Field(description="vp2 exports the device, vp1 imports it")
    att: AttConfig
    share: int = Field(ge=0, le=MAX_SHARE)
    vi: str = Field(pattern=IFNAME, description="The interface on the PN's LAN")
    vi_prefixlen: int = Field(ge=1, le=32)
    underlay_dev: str = Field(pattern=IFNAME)
    local_underlay: IPv4
    remote_underlay: IPv4
    overlay_local: IPv4Iface = Field(description="This end's overlay address (10.0.0.1/30)")
    overlay_remote: IPv4
    underlay_mtu: Mtu = 1500
    underlay_onlink: bool = False
    alg: bool = False
    http_ports: list[Port] = Field(default_factory=list, max_length=64)
    icmp_tap: bool = False
    link_mtu: Mtu | None = Field(default=None, description="The agent's veth MTU")
