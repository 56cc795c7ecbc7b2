"""Where is user U: the small interface the conduit reads.

The conduit reads positions only through `Locator`; the catalog's where-is service
(whereabouts.py, merging logins, switch-port sightings and DHCP leases with the
sans-I/O core whereis.py) is the one it uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Position:
    user: str
    node: str
    source: str
    """login, lease or host-seen (or declared: given when subscribing)."""
    at: float
    """When the source saw the user there (epoch seconds)."""
    why: str = ""
    """Which source won and why the others lost (whereis.locate)."""


class Locator(Protocol):
    """Answers where each user is now (None: never seen)."""

    def where(self, session: Session, users: Mapping[str, Iterable[str]]) -> dict[str, Position]:
        """`users`: user -> the MACs of their devices. Returns the users seen."""
        ...
