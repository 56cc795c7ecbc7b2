"""What every function's configuration schema is built from (the base, a path that
must lie below the image directory, TLS files) and the schemas of the platform's
built-in functions (counter, forwarder). Kept apart from the functions, so that a
function's own start-up does not import pydantic; netfate.vnf.registry names each
schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from netfate.vnf.registry import DEFAULT_IMAGE_DIR, below

IFNAME = r"^[A-Za-z0-9_.-]{1,15}$"
"""A Linux interface name: at most 15 bytes (IFNAMSIZ), no '/', no space."""


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
