"""Home Radio Head service: USB devices at home exported over USB/IP to the ISP."""

from .allowlist import AllowList, AllowRule

__all__ = ["AllowList", "AllowRule"]
