"""The address translation table (ATT) of one share, seed section III.B, Table 1.

One share exports device D2 of PN1 into PN2. Two Virtual Presences carry it:

- VP2 runs in PN1 (the exporting PN). Its Virtualization Interface (VI) holds
  one alias per PN2 device, taken from free PN1 addresses. It holds the ATT
  (the orchestrator's choice; the seed allows either VP).
- VP1 runs in PN2. Its VI holds one alias that stands for D2 inside PN2.

The ATT maps each VP2 alias (a PN1 address) to the PN2 device it represents.
Both VPs are configured from this one object: the kernel fast path
(`kernel.py`) and the Python reference path (`translator.py`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Address = ipaddress.IPv4Address
Network = ipaddress.IPv4Network

LIMITED_BROADCAST = Address("255.255.255.255")


class ATTError(ValueError):
    """An ATT that cannot be installed (overlapping aliases, address outside its PN...)."""


@dataclass(frozen=True)
class ATT:
    pn1: Network
    """PN1's subnet (where the shared device lives and VP2 runs)."""
    pn2: Network
    """PN2's subnet (where the device is imported and VP1 runs)."""
    shared_device: Address
    """D2: the shared device's local address in PN1."""
    import_alias: Address
    """VP1's alias in PN2 that stands for D2 (192.168.0.13 in the seed's Fig. 3.b)."""
    entries: tuple[tuple[Address, Address], ...] = field(default=())
    """(VP2 alias in PN1, PN2 device address) pairs, one per PN2 device."""

    def __post_init__(self) -> None:
        if self.shared_device not in self.pn1:
            raise ATTError(f"shared device {self.shared_device} is not in PN1 {self.pn1}")
        if self.import_alias not in self.pn2:
            raise ATTError(f"import alias {self.import_alias} is not in PN2 {self.pn2}")
        aliases = [a for a, _ in self.entries]
        devices = [d for _, d in self.entries]
        if len(set(aliases)) != len(aliases) or len(set(devices)) != len(devices):
            raise ATTError("an alias or a PN2 device appears twice in the ATT")
        for a, d in self.entries:
            if a not in self.pn1 or a in (self.pn1.network_address, self.pn1.broadcast_address):
                raise ATTError(f"alias {a} is not a host address of PN1 {self.pn1}")
            if a == self.shared_device:
                raise ATTError(f"alias {a} is the shared device's own address")
            if d not in self.pn2:
                raise ATTError(f"PN2 device {d} is not in PN2 {self.pn2}")
            if d == self.import_alias:
                raise ATTError(f"PN2 device {d} is VP1's own alias")

    # -------------------------------------------------------------- lookups

    @property
    def to_pn2(self) -> dict[Address, Address]:
        """VP2 alias -> PN2 device (VP2, packets from the VI)."""
        return dict(self.entries)

    @property
    def to_pn1(self) -> dict[Address, Address]:
        """PN2 device -> VP2 alias (VP2, packets from the EI)."""
        return {d: a for a, d in self.entries}

    @property
    def aliases(self) -> tuple[Address, ...]:
        return tuple(a for a, _ in self.entries)

    def pn1_broadcasts(self) -> frozenset[Address]:
        return frozenset({LIMITED_BROADCAST, self.pn1.broadcast_address})

    def pn2_broadcasts(self) -> frozenset[Address]:
        return frozenset({LIMITED_BROADCAST, self.pn2.broadcast_address})

    def with_entries(self, entries: list[tuple[Address, Address]]) -> ATT:
        """The same share with another device list (PN2 devices came or left)."""
        return ATT(self.pn1, self.pn2, self.shared_device, self.import_alias, tuple(entries))

    # -------------------------------------------------------------- (de)serialise

    def to_dict(self) -> dict[str, Any]:
        return {
            "pn1": str(self.pn1),
            "pn2": str(self.pn2),
            "shared_device": str(self.shared_device),
            "import_alias": str(self.import_alias),
            "entries": [[str(a), str(d)] for a, d in self.entries],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ATT:
        try:
            return cls(
                pn1=ipaddress.IPv4Network(str(d["pn1"])),
                pn2=ipaddress.IPv4Network(str(d["pn2"])),
                shared_device=Address(str(d["shared_device"])),
                import_alias=Address(str(d["import_alias"])),
                entries=tuple((Address(str(a)), Address(str(b))) for a, b in d["entries"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ATTError):
                raise
            raise ATTError(f"malformed ATT: {e}") from None


def allocate_aliases(
    pn: Network, taken: set[Address], count: int, reserved: set[Address] | None = None
) -> list[Address]:
    """`count` free host addresses of `pn`, from the top down (DHCP pools start low).

    Raises ATTError when the PN has fewer free addresses than asked: a share
    that cannot represent every device is refused rather than half-built.
    """
    busy = set(taken) | (reserved or set())
    free = [a for a in reversed(list(pn.hosts())) if a not in busy]
    if len(free) < count:
        raise ATTError(f"PN {pn} has {len(free)} free addresses, {count} needed")
    return free[:count]
