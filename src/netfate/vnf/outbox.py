"""A function's events for the orchestrator: the outbox behind ``Function.emit``.

A function hands a past-tense dataclass to ``emit``; the outbox numbers it and
keeps the latest ``OUTBOX_LIMIT``. The runtime's ``status`` op shows them as
``stats["events"] = {"last_seq", "dropped", "items": [{"seq", "kind", ...fields}]}``;
the agent carries every function's stats in its report, and the orchestrator
hands each event it has not seen (``seq`` above the one it stored, or any after a
restart numbered anew) to the service that owns the function's descriptor
(``Service.on_instance_event``). A function that migrates carries its outbox in
its exported state so that the numbering continues at the new place.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

OUTBOX_LIMIT = 256


@dataclass
class Outbox:
    """The ``emit`` hook's queue: numbered events, the latest ``limit`` kept."""

    limit: int = OUTBOX_LIMIT
    last_seq: int = 0
    dropped: int = 0
    """Events pushed out of the window before anyone could read them (a lower bound
    of what a slow reader missed)."""
    items: deque[dict[str, Any]] = field(default_factory=deque)

    def emit(self, event: Any) -> int:
        """Record `event` (a dataclass instance); returns its sequence number."""
        self.last_seq += 1
        self.items.append({"seq": self.last_seq, "kind": type(event).__name__, **asdict(event)})
        while len(self.items) > self.limit:
            self.items.popleft()
            self.dropped += 1
        return self.last_seq

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Events numbered after `seq`, oldest first."""
        return [e for e in self.items if e["seq"] > seq]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.items if e["kind"] == kind]

    def snapshot(self) -> dict[str, Any]:
        """What ``status`` shows and ``export`` carries."""
        return {"last_seq": self.last_seq, "dropped": self.dropped, "items": list(self.items)}

    def restore(self, state: Any) -> None:
        """Continue a peer's numbering and keep its retained events (migration)."""
        if not isinstance(state, dict):
            return
        items = [e for e in state.get("items", ()) if isinstance(e, dict)][-self.limit :]
        last = state.get("last_seq", 0)
        if isinstance(last, int) and last >= self.last_seq:
            mine = list(self.items)
            self.items = deque(items)
            # Events this process emitted before the import follow the peer's.
            self.last_seq = last
            for e in mine:
                self.last_seq += 1
                self.items.append({**e, "seq": self.last_seq})
            while len(self.items) > self.limit:
                self.items.popleft()
            dropped = state.get("dropped", 0)
            self.dropped = int(dropped) if isinstance(dropped, int) else 0
