"""Configurations of the USB/IP functions as their schemas take them (vnf/usbip_host/
config.py, vnf/usbip_client/config.py), for tests that create them through the API:
the files named need not exist (no instance runs in a unit test)."""

from __future__ import annotations

from typing import Any

HRH_TLS = {"ca": "/pki/ca.pem", "cert": "/pki/hrh.pem", "key": "/pki/hrh.key"}
ISP_TLS = {"ca": "/pki/ca.pem", "cert": "/pki/isp.pem", "key": "/pki/isp.key"}

HRH_CONFIG: dict[str, Any] = {"tls": HRH_TLS}
"""The HRH's server: its TLS files (required: no silent fallback to plain USB/IP)."""
CLIENT_CONFIG: dict[str, Any] = {"server": "192.168.50.2", "tls": ISP_TLS}
"""An ISP function's importer: the HRH it imports from, its TLS files."""
