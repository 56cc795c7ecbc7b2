"""The configuration of the HRH's USB/IP server (function.py, tls.py), as a schema:
what the orchestrator's API and the agent check before the function starts.

A storage device's ``image`` is opened read-write by a process running as root, so
it must lie below the node's image directory (symlinks and ``..`` resolved): the
checker passes that directory as the validation context's ``image_dir``.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Annotated, Literal

from pydantic import Field, field_validator

from netfate.vnf.configs import DevicePath, FunctionConfig, TlsFilesConfig

BusId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,31}$", description="USB bus id")]
"""At most 31 characters: the USB/IP wire format gives a bus id 32 bytes, NUL included."""
AllowKey = Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9._:-]{1,31})$")]
Client = Annotated[str, Field(min_length=1, max_length=253)]
"""An address, a prefix (CIDR) or a certificate identity (allowlist.py)."""


class SerialDevice(FunctionConfig):
    kind: Literal["serial"]
    busid: BusId | None = None
    period: float = Field(default=1.0, gt=0, le=86400, description="Seconds between readings")
    base_celsius: float = Field(default=21.0, ge=-100, le=200)


class StorageDevice(FunctionConfig):
    kind: Literal["storage"]
    busid: BusId | None = None
    image: DevicePath = Field(description="The disk image, below the node's --image-dir")
    read_only: bool = False


class HidDevice(FunctionConfig):
    kind: Literal["hid"]
    busid: BusId | None = None


class IsoDevice(FunctionConfig):
    kind: Literal["iso"]
    busid: BusId | None = None


Device = Annotated[
    SerialDevice | StorageDevice | HidDevice | IsoDevice, Field(discriminator="kind")
]


class HostConfig(FunctionConfig):
    host: str = Field(default="0.0.0.0", max_length=45, description="The address it listens on")
    port: int = Field(default=3240, ge=1, le=65535)
    devices: list[Device] = Field(default_factory=list, max_length=32)
    allow: dict[AllowKey, list[Client]] | None = Field(
        default=None, max_length=64, description="Bus id ('*': every one) -> who may import it"
    )

    @field_validator("host")
    @classmethod
    def _address(cls, v: str) -> str:
        ip_address(v)  # ValueError: not an address
        return v

    @field_validator("allow")
    @classmethod
    def _bounded(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if v is not None and any(len(clients) > 64 for clients in v.values()):
            raise ValueError("at most 64 clients a device")
        return v


class TlsHostConfig(HostConfig):
    tls: TlsFilesConfig
