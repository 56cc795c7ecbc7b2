"""The configuration of a host of Virtual Objects (function.py), as a schema the API
and the agent check before the function starts: ports, the objects it starts with
(bounded in number and in the history each is preloaded with) and its sensor feed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from netfate.vnf.configs import FunctionConfig
from netfate.vnf.usbip_client.config import HostName
from netfate.vnf.usbip_host.config import BusId

MAX_OBJECTS = 1024
MAX_PRELOAD = 64 << 20
"""Bytes of past readings one object may start with (the paper's are 8-78 KB)."""


class ObjectConfig(FunctionConfig):
    vo: int = Field(ge=0, le=2**31 - 1, description="The object's number")
    user: str = Field(default="", max_length=64)
    sensor: BusId = "1-1"
    preload: int = Field(default=0, ge=0, le=MAX_PRELOAD, description="Bytes of history")


class FeedConfig(FunctionConfig):
    kind: Literal["usbip", "local", "none"] = "none"
    server: HostName | None = Field(default=None, description="The HRH (usbip feeds)")
    port: int = Field(default=3240, ge=1, le=65535)
    period: float = Field(default=1.0, gt=0, le=86400, description="Seconds (local feeds)")


class VoHostConfig(FunctionConfig):
    host: int = Field(default=0, ge=0, le=0xFFFF, description="This host's number")
    port: int = Field(default=7780, ge=1, le=65535)
    sync_port: int = Field(default=7781, ge=1, le=65535)
    feed: FeedConfig | None = None
    objects: list[ObjectConfig] = Field(default_factory=list, max_length=MAX_OBJECTS)
