"""Configuration schemas of the platform's built-in functions (counter, forwarder),
apart from the functions so that a function's own start-up does not import pydantic;
netfate.vnf.registry names them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

IFNAME = r"^[A-Za-z0-9_.-]{1,15}$"
"""A Linux interface name: at most 15 bytes (IFNAMSIZ), no '/', no space."""


class FunctionConfig(BaseModel):
    """Base of a function's configuration: unknown keys are refused (a typo is an
    error), numbers are finite, and JSON types are taken as they are."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class CounterConfig(FunctionConfig):
    port: int = Field(default=7777, ge=1, le=65535, description="The UDP port it answers on")


class ForwarderConfig(FunctionConfig):
    interface: str = Field(
        default="eth0", pattern=IFNAME, description="The interface it forwards on"
    )
