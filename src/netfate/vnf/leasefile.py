"""What a function that runs dnsmasq reports of its DHCP leases in its stats.

`stats["dhcp"]["lease_file"]`: dnsmasq's lease file as it stands (at most
`MAX_BYTES`; the orchestrator parses it as untrusted text: the catalog's
where-is core, services/catalog/whereis.py); `["lease_seconds"]`: the length of
the leases it hands out (None: infinite), so a lease's expiry tells when it was
granted or renewed (dnsmasq sets expiry = now + length).
"""

from __future__ import annotations

import re
from pathlib import Path

MAX_BYTES = 64 * 1024
DEFAULT_SECONDS = 3600
"""dnsmasq's lease length when --dhcp-range gives none."""
_LENGTH = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def read(path: Path) -> str:
    """The lease file's text ('' when it is not there yet)."""
    try:
        with path.open("rb") as f:
            return f.read(MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def seconds_of(dhcp_range: str) -> int | None:
    """The lease length a --dhcp-range value gives (FIRST,LAST[,MASK][,LENGTH])."""
    last = dhcp_range.rsplit(",", 1)[-1].strip().lower()
    if last in ("infinite", "deprecated"):
        return None
    m = _LENGTH.match(last)
    if m is None or "," not in dhcp_range:
        return DEFAULT_SECONDS
    return int(m.group(1)) * _UNIT[m.group(2)]


def report(path: Path, seconds: int | None) -> dict[str, object]:
    return {"lease_file": read(path), "lease_seconds": seconds}
