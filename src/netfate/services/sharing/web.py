"""The owner's vHG page: devices, details, Share; the recipient's pending requests.

Served by the sharing router at /api/v1/sharing/page from
web/templates/sharing.html; its script is web/static/panels/sharing.js (which,
loaded on the dashboard instead, adds a "Device sharing" panel).
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "web" / "templates" / "sharing.html"


def render_page() -> str:
    return TEMPLATE.read_text(encoding="utf-8")
