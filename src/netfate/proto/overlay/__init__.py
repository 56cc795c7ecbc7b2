"""The Virtual Presence overlay encapsulation (VXLAN, RFC 7348)."""

from .vxlan import VXLAN_PORT, OverlayError, decapsulate, encapsulate

__all__ = ["VXLAN_PORT", "OverlayError", "decapsulate", "encapsulate"]
