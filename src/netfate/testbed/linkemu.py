"""Userspace link emulator core: delay and loss for links the kernel cannot impair.

Sans-I/O (DESIGN.md, convention 1): frames go in with the time they arrived
(`receive(link, side, frame, now)`) and come out of `due(now)` once their
delay has passed; the core never reads a clock or a socket. The driver
(`linkemu_driver`) does the I/O for all emulated links of a run in one
process, with raw packet sockets, inside the run's switch namespace.

Model, per link and direction (like one netem qdisc on each end):
- each frame is delayed by the link's one-way `delay_us`;
- it is lost with probability `loss`, drawn from a generator seeded per
  (seed, link, direction), so a run is reproducible and one link's traffic
  does not change another link's losses;
- at most `limit` frames wait per direction; more are dropped (tail drop),
  which bounds memory like netem's `limit`;
- frames leave in the order they arrived (constant delay keeps FIFO order;
  a clock that steps back cannot reorder them either).
Rate limiting is not done here: TBF on the veth ends shapes the link.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = ["DirectionStats", "LinkEmulator", "LinkParams", "Side"]


class Side(IntEnum):
    """Which end of a link a frame entered; it leaves through the other one."""

    A = 0
    B = 1

    @property
    def other(self) -> Side:
        return Side.B if self is Side.A else Side.A


@dataclass(frozen=True)
class LinkParams:
    delay_us: int
    """One-way delay added to every frame, microseconds."""
    loss: float = 0.0
    """Probability that a frame is lost, 0..1."""
    limit: int = 10000
    """Frames that may wait per direction before tail drop."""

    def __post_init__(self) -> None:
        if self.delay_us < 0:
            raise ValueError(f"delay_us must be >= 0 (got {self.delay_us})")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be within 0..1 (got {self.loss})")
        if self.limit < 1:
            raise ValueError(f"limit must be >= 1 (got {self.limit})")


@dataclass
class DirectionStats:
    received: int = 0
    """Frames that entered this direction."""
    delivered: int = 0
    """Frames handed out by `due`."""
    lost: int = 0
    """Frames dropped by the loss model."""
    overflow: int = 0
    """Frames dropped because `limit` frames were already waiting."""
    queued: int = 0
    """Frames waiting now."""


@dataclass
class _Direction:
    rng: random.Random
    stats: DirectionStats = field(default_factory=DirectionStats)
    last_due: float = float("-inf")
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    """(due, frame), due times non-decreasing: a FIFO is enough per direction."""


@dataclass
class _Link:
    params: LinkParams
    directions: tuple[_Direction, _Direction]


class LinkEmulator:
    """Delay and loss for any number of links; one timeline for all of them."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._links: dict[int, _Link] = {}
        # One entry per non-empty direction: (due time of its head frame, sequence,
        # link id, entry side). Frames wait in their direction's FIFO, so a frame
        # costs two deque operations; only directions go through the heap.
        self._ready: list[tuple[float, int, int, Side]] = []
        self._seq = 0

    def add_link(self, link_id: int, params: LinkParams) -> None:
        if link_id in self._links:
            raise ValueError(f"link {link_id} already exists")
        dirs = tuple(
            _Direction(rng=random.Random(f"{self._seed}:{link_id}:{side.value}")) for side in Side
        )
        self._links[link_id] = _Link(params, (dirs[0], dirs[1]))

    @property
    def link_ids(self) -> list[int]:
        return list(self._links)

    def receive(self, link_id: int, side: Side, frame: bytes, now: float) -> bool:
        """A frame entered `link_id` at `side` at time `now` (seconds). True if queued."""
        link = self._links.get(link_id)
        if link is None:
            raise KeyError(f"unknown link {link_id}")
        d = link.directions[side]
        d.stats.received += 1
        if link.params.loss > 0 and d.rng.random() < link.params.loss:
            d.stats.lost += 1
            return False
        if d.stats.queued >= link.params.limit:
            d.stats.overflow += 1
            return False
        due = max(now + link.params.delay_us / 1e6, d.last_due)
        d.last_due = due
        d.stats.queued += 1
        d.queue.append((due, frame))
        if len(d.queue) == 1:
            self._seq += 1
            heapq.heappush(self._ready, (due, self._seq, link_id, side))
        return True

    def next_due(self) -> float | None:
        """When the next frame is due, or None if nothing waits."""
        return self._ready[0][0] if self._ready else None

    def due(self, now: float) -> list[tuple[int, Side, bytes]]:
        """Frames whose time has come: (link id, side to send them out of, frame).

        In arrival order within each direction; directions in order of their
        first due frame.
        """
        return [(link_id, side, frame) for _, link_id, side, frame in self.due_timed(now)]

    def due_timed(self, now: float) -> list[tuple[float, int, Side, bytes]]:
        """As `due`, each with the time it was due (lets a driver measure its lateness)."""
        out: list[tuple[float, int, Side, bytes]] = []
        ready = self._ready
        while ready and ready[0][0] <= now:
            _, _, link_id, side = heapq.heappop(ready)
            d = self._links[link_id].directions[side]
            q, other = d.queue, side.other
            n = 0
            while q and q[0][0] <= now:
                due, frame = q.popleft()
                out.append((due, link_id, other, frame))
                n += 1
            d.stats.queued -= n
            d.stats.delivered += n
            if q:
                self._seq += 1
                heapq.heappush(ready, (q[0][0], self._seq, link_id, side))
        return out

    def stats(self, link_id: int) -> dict[str, DirectionStats]:
        """Per direction: "a->b" counts frames that entered at A."""
        link = self._links[link_id]
        return {"a->b": link.directions[Side.A].stats, "b->a": link.directions[Side.B].stats}
