"""One connected switch as the controller's core sees it: a small Protocol.

The core (`keeper.py`, `core.py`) decides; whatever implements `SwitchIO` talks
OpenFlow. In the controller process that is `osken_switch.OsKenSwitch` (os-ken,
one TCP connection); in the unit tests an in-memory table (tests/sdn_fixtures.py).

    read_table()            flow stats + group descriptions + port stats, waited for
    send_batch(plan, ...)   group-mods, flow-mods, a barrier; waited for the barrier
    reinject(packets)       packet-outs into the table, not waited for
    flow_add(flow, timeout) one short-lived flow-mod, not waited for
    packet_out(port, frame) one frame out of a port, not waited for

The calls that wait say when their I/O ended, on the driver's clock (the one
that gives the core its `now`): the core never reads a clock itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from netfate.orchestrator.sdn.compile import FlowSpec, GroupSpec
from netfate.orchestrator.sdn.reconcile import FlowEntry, Plan


@dataclass(frozen=True)
class Table:
    """What a switch holds, as read back."""

    flows: list[FlowEntry]
    groups: dict[int, GroupSpec]
    """Group id -> group; one we would not build is an empty stand-in (rewritten)."""
    ports: list[dict[str, Any]]
    """Port counters, as `ofp.port_stats_to_json` gives them."""
    took_s: float
    """How long the read took (a big table is read less often)."""


@dataclass(frozen=True)
class BatchResult:
    """How a batch ended."""

    ok: bool
    """The barrier came back and the switch reported no error."""
    sent_at: float
    """When its first message was being written."""
    done_at: float
    """When the barrier reply came (or the wait for it ended)."""
    refused: Mapping[int, str] = field(default_factory=dict)
    """Cookie -> the switch's error, for each flow or group add it refused."""


@dataclass(frozen=True)
class Reinject:
    """A packet put back into the flow table as if it had just arrived at `in_port`."""

    in_port: int
    data: bytes


class SwitchIO(Protocol):
    def read_table(self) -> Table | None:
        """The switch's flows, groups and port counters; None if it did not answer."""
        ...

    def send_batch(self, plan: Plan, trailer: Sequence[Reinject]) -> BatchResult:
        """Send `plan` (groups added/modified, flows added, flows deleted, groups
        deleted, then a barrier) and wait for the barrier. `trailer` goes right
        behind the barrier request: the switch finishes everything before a
        barrier before it executes what follows, so re-injected packets meet the
        new flows without waiting for the barrier's round trip."""
        ...

    def reinject(self, packets: Sequence[Reinject]) -> None:
        """Put packets back into the table now (their flows are there already)."""
        ...

    def flow_add(self, flow: FlowSpec, hard_timeout: int) -> None:
        """Add one flow that expires by itself; not confirmed."""
        ...

    def packet_out(self, port: int, frame: bytes) -> None:
        """Send `frame` out of `port`."""
        ...
