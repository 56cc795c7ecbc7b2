"""Home Radio Head service: USB devices at home exported over USB/IP to the ISP."""

from .allowlist import AllowList, AllowRule

# `netfate usbip ...` (serve, list, serial); see netfate.services.
CLI = "netfate.services.usbip.cli:app"

__all__ = ["CLI", "AllowList", "AllowRule"]
