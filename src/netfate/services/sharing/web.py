"""The owner's vHG page: devices, details, Share; the recipient's pending requests.

Served by the sharing router at /api/v1/sharing/page from templates/page.html;
its script is static/panel.js (/static/sharing/panel.js), which, loaded on the
dashboard instead (the contract's panel), adds a "Device sharing" panel. The
gateway settings page (/api/v1/sharing/gateway-page, templates/gateway.html,
static/gateway.js) uses panel.js's helpers.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_page(name: str = "page.html") -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")
