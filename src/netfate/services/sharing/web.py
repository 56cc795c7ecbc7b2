"""The owner's vHG page: devices, details, Share; the recipient's pending requests.

Served by the sharing router at /api/v1/sharing/page from templates/page.html;
its script is static/panel.js (/static/sharing/panel.js), which, loaded on the
dashboard instead (the contract's panel), adds a "Device sharing" panel.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "templates" / "page.html"


def render_page() -> str:
    return TEMPLATE.read_text(encoding="utf-8")
