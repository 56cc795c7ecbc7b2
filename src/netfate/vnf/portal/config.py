"""The configuration of a CPE's captive portal (function.py), as a schema the API and
the agent check before the function starts: its node and address, its RADIUS
server(s) and shared secret, the Disconnect port, its DHCP service (handed to
dnsmasq as arguments, so each part is checked for what it is), the walled
garden and the front-end's sign-in a captive client is sent to."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from netfate.vnf.configs import (
    IFNAME,
    NODE,
    EndpointOrAddress,
    FunctionConfig,
    IPv4,
    IPv4OrEmpty,
    write_only,
)

MAX_DHCP_HOSTS = 256
LEASE = re.compile(r"^(infinite|[0-9]{1,9}[smhdw]?)$")
DHCP_HOST = r"^[A-Za-z0-9][A-Za-z0-9.:,_*-]{0,199}$"
"""A dnsmasq --dhcp-host value (MAC, address, name, lease time, comma-separated)."""


class RadiusConfig(FunctionConfig):
    server: EndpointOrAddress = Field(
        default="127.0.0.1:1812", description="Authentication: IPv4[:PORT] (port 1812)"
    )
    acct_server: EndpointOrAddress | None = Field(
        default=None, description="Accounting: IPv4[:PORT] (port 1813; default: server's)"
    )
    secret: str = write_only(description="The RADIUS shared secret (write-only)")
    require_message_authenticator: bool = True


class DhcpConfig(FunctionConfig):
    range: str = Field(
        max_length=80,
        description="dnsmasq's --dhcp-range: FIRST,LAST[,NETMASK][,LEASE] (e.g. "
        "10.0.0.100,10.0.0.150,1h)",
    )
    router: IPv4 | None = Field(default=None, description="DHCP option 3 (default: none)")
    hosts: list[Annotated[str, Field(pattern=DHCP_HOST)]] = Field(
        default_factory=list, max_length=MAX_DHCP_HOSTS, description="dnsmasq's --dhcp-host"
    )
    interface: str = Field(default="eth0", pattern=IFNAME)
    known_only: bool = Field(
        default=False,
        description="Answer only the clients in `hosts` (a LAN other DHCP servers share: "
        "the testbed's bridges are one L2 network)",
    )

    @field_validator("range")
    @classmethod
    def _range(cls, v: str) -> str:
        parts = v.split(",")
        if not 2 <= len(parts) <= 4:
            raise ValueError("FIRST,LAST[,NETMASK][,LEASE]")
        first, last = (ipaddress.IPv4Address(p) for p in parts[:2])
        if first > last:
            raise ValueError(f"{first} is above {last}")
        rest = parts[2:]
        if rest and LEASE.match(rest[-1]):
            rest = rest[:-1]
        for p in rest:
            ipaddress.IPv4Address(p)  # a netmask
        return v


MAX_PINHOLES = 256


class PinholeConfig(FunctionConfig):
    client: IPv4 = Field(description="The captive client's address")
    to: IPv4 = Field(
        description="The one address it may reach, or be reached from (e.g. its edge streamer)"
    )
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        min_length=1,
        max_length=16,
        description="Destination ports: `to`'s (direction out), the client's (direction in)",
    )
    proto: Literal["tcp", "udp"] = Field(default="tcp", description="Their protocol")
    direction: Literal["out", "in"] = Field(
        default="out",
        description="out: the client to `to`'s ports (HLS, the RTP join); in: `to` to the "
        "client's ports (a stream it pushes: an edge streamer's RTP and RTCP)",
    )


class PortalConfig(FunctionConfig):
    node: str = Field(default="", pattern=NODE, description="Its CPE (NAS-Identifier)")
    port: int = Field(default=80, ge=0, le=65535, description="HTTP (0: any free port)")
    address: IPv4OrEmpty = Field(default="", description="Its own address, in its URLs")
    radius: RadiusConfig | None = None
    dm_port: int | None = Field(
        default=3799, ge=0, le=65535, description="RFC 5176 Disconnect (UDP; null: off)"
    )
    dm_address: IPv4 | None = Field(default=None, description="Where it takes them (any)")
    interim: float = Field(default=30.0, gt=0, le=86400, description="Seconds between updates")
    dhcp: DhcpConfig | None = None
    nft: bool = Field(default=True, description="The nftables gate (off only in tests)")
    garden: list[IPv4] = Field(
        default_factory=list, max_length=64, description="What a captive client may reach"
    )
    signin: str = Field(
        default="",
        max_length=512,
        description="The front-end's sign-in (http://ADDRESS/PATH, ADDRESS in the garden): "
        "where a captive client's web is sent instead of this portal's login form",
    )

    pinholes: list[PinholeConfig] = Field(
        default_factory=list,
        max_length=MAX_PINHOLES,
        description="A client let through to one address's ports, or that address's UDP "
        "to the client's ports, without a portal login (streaming: a viewer signed in at "
        "the front-end, and its edge streamer on a neighbour PE); changed while running "
        "(no restart)",
    )

    @field_validator("signin")
    @classmethod
    def _signin_in_garden(cls, v: str, info: ValidationInfo) -> str:
        if v:  # the garden is checked first (declared before): a bad one is its own error
            signin_host(v, [str(a) for a in info.data.get("garden") or []])
        return v


def signin_host(url: str, garden: list[str]) -> str:
    """The garden address a sign-in URL names (http://ADDRESS[:PORT]/PATH); a URL a
    captive client could not reach (not http, not an address in the garden) is an
    error that says so."""
    m = SIGNIN.fullmatch(url)
    if m is None:
        raise ValueError(f"signin: {url!r} is not http://ADDRESS[:PORT]/PATH")
    if m["host"] not in garden:
        raise ValueError(
            f"signin: {m['host']} is not in the garden (a captive client reaches only it)"
        )
    return m["host"]


SIGNIN = re.compile(r"http://(?P<host>[0-9.]{7,15})(?::[0-9]{1,5})?(?P<path>/[!-~]*)")
"""A sign-in URL: plain HTTP (what the gate lets through is web to the garden), an
IPv4 address (the garden is addresses), printable ASCII with no space."""
