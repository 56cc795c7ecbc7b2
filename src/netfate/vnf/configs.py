"""What every function's configuration schema is built from (the base, a path that
must lie below the image directory, TLS files, IPv4 addresses and prefixes, a UDP
endpoint, a write-only secret) and the schemas of the platform's built-in functions
(counter, forwarder). Kept apart from the functions, so that a
function's own start-up does not import pydantic; netfate.vnf.registry names each
schema."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from netfate.vnf.registry import DEFAULT_IMAGE_DIR, below

IFNAME = r"^[A-Za-z0-9_.-]{1,15}$"
"""A Linux interface name: at most 15 bytes (IFNAMSIZ), no '/', no space."""
NODE = r"^([a-z](?:[a-z0-9-]{0,30}[a-z0-9])?)?$"
"""A node's name as the topology spells it (model.topology), or none."""


class FunctionConfig(BaseModel):
    """Base of a function's configuration: unknown keys are refused (a typo is an
    error), numbers are finite, and JSON types are taken as they are."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _below_image_dir(v: str, info: ValidationInfo) -> str:
    ctx = info.context if isinstance(info.context, dict) else {}
    root = Path(ctx.get("image_dir") or DEFAULT_IMAGE_DIR)
    if not below(v, root):
        raise ValueError(f"must be an absolute path below {root}")
    return v


DevicePath = Annotated[
    str,
    Field(min_length=2, max_length=4096),
    AfterValidator(_below_image_dir),
]
"""A file a function opens or replaces as root (a disk image, a pty's link): an
absolute path below the node's image directory (--image-dir), symlinks and ``..``
resolved; whoever checks passes that directory as the context's ``image_dir``."""


def _ipv4(v: str) -> str:
    ipaddress.IPv4Address(v)  # ValueError: not an IPv4 address
    return v


def _ipv4_or_empty(v: str) -> str:
    return v and _ipv4(v)


def _ipv4_network(v: str) -> str:
    ipaddress.IPv4Network(v)  # ValueError: not a prefix, or host bits set
    return v


def _ipv4_interface(v: str) -> str:
    if "/" not in v:
        raise ValueError("an IPv4 address with its prefix length (a.b.c.d/n)")
    ipaddress.IPv4Interface(v)
    return v


def _endpoint(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep:
        raise ValueError("IPv4:PORT")
    if not (port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port[:8]!r} is not a number in 1..65535")
    _ipv4(host)
    return v


def _endpoint_or_address(v: str) -> str:
    return _endpoint(v) if ":" in v else _ipv4(v)


IPv4 = Annotated[str, Field(min_length=7, max_length=15), AfterValidator(_ipv4)]
"""An IPv4 address, dotted quad (a string, as the function reads it)."""
IPv4OrEmpty = Annotated[str, Field(max_length=15), AfterValidator(_ipv4_or_empty)]
"""An IPv4 address, or "" for none (a function that reads it with str())."""
IPv4Prefix = Annotated[str, Field(min_length=9, max_length=18), AfterValidator(_ipv4_network)]
"""An IPv4 prefix in CIDR notation, no host bits set (a.b.c.0/24)."""
IPv4Iface = Annotated[str, Field(min_length=9, max_length=18), AfterValidator(_ipv4_interface)]
"""An interface's IPv4 address with its prefix length (10.0.0.1/30)."""
Endpoint = Annotated[str, Field(min_length=9, max_length=21), AfterValidator(_endpoint)]
"""A UDP peer as ``IPv4:PORT``."""
EndpointOrAddress = Annotated[
    str, Field(min_length=7, max_length=21), AfterValidator(_endpoint_or_address)
]
"""``IPv4:PORT``, or an IPv4 alone where the function has a default port."""
Port = Annotated[int, Field(ge=1, le=65535)]


def write_only(default: str | None = "", max_length: int = 128, **kw: Any) -> Any:
    """A secret's field: bounded, and marked writeOnly in the OpenAPI. A read shows it
    as netfate.model.secrets.HIDDEN because of its name (``secret``, ``password``...),
    which tests/unit/test_function_registry.py checks against this mark."""
    return Field(
        default, max_length=max_length,
        json_schema_extra={"writeOnly": True, "format": "password"}, **kw,
    )  # fmt: skip


class TlsFilesConfig(FunctionConfig):
    """A function's ``tls``: its CA, certificate and key files (netfate.vnf.tls)."""

    ca: str = Field(min_length=1, max_length=4096)
    cert: str = Field(min_length=1, max_length=4096)
    key: str = Field(min_length=1, max_length=4096)


class CounterConfig(FunctionConfig):
    port: int = Field(default=7777, ge=1, le=65535, description="The UDP port it answers on")


class ForwarderConfig(FunctionConfig):
    interface: str = Field(
        default="eth0", pattern=IFNAME, description="The interface it forwards on"
    )
