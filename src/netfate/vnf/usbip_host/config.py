"""The configuration of the HRH's USB/IP server (function.py, tls.py), as a schema:
what the orchestrator's API and the agent check before the function starts.

A storage device's ``image`` is opened read-write by a process running as root, so
it must lie below the node's image directory (symlinks and ``..`` resolved): the
checker passes that directory as the validation context's ``image_dir``.
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from netfate.vnf.configs import FunctionConfig
from netfate.vnf.registry import DEFAULT_IMAGE_DIR, below

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
    image: str = Field(
        min_length=2, max_length=4096, description="Absolute path of the disk image, below "
        "the node's image directory (--image-dir)"
    )  # fmt: skip
    read_only: bool = False

    @field_validator("image")
    @classmethod
    def _below_image_dir(cls, v: str, info: ValidationInfo) -> str:
        ctx = info.context if isinstance(info.context, dict) else {}
        root = Path(ctx.get("image_dir") or DEFAULT_IMAGE_DIR)
        if not below(v, root):
            raise ValueError(f"the image must be an absolute path below {root}")
        return v


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


class TlsFilesConfig(FunctionConfig):
    ca: str = Field(min_length=1, max_length=4096)
    cert: str = Field(min_length=1, max_length=4096)
    key: str = Field(min_length=1, max_length=4096)


class TlsHostConfig(HostConfig):
    tls: TlsFilesConfig
