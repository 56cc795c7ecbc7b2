"""Per-client event counting in bounded memory: failed sign-ins, login attempts.

A client (a key: its address) may have `limit` events in any `window` seconds;
past that it is limited until its oldest counted event leaves the window.
Sans-I/O: every call takes `now` (a monotonic clock's seconds).

Memory is bounded whatever clients show up: at most `max_keys` clients of at
most `limit` timestamps each, plus one shared overflow entry. When the table is
full, clients whose last event left the window are dropped first (least recent
first, in amortised constant time). A client with an event still in its window
is never dropped: evicting it would forget that it is over its limit, which a
flood of other addresses could then be used for. Clients that find the table
full of such clients share the overflow entry: together they get `limit` events
per window, so under a flood of distinct clients the limit still holds (new
clients are refused early rather than tracked without bound).
"""

from __future__ import annotations

from collections import OrderedDict, deque


class WindowCounter:
    def __init__(self, limit: int, window: float, max_keys: int = 4096) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be at least 1, window positive")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        # Least recently counted first (move_to_end on each event).
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()
        self._overflow: deque[float] = deque(maxlen=limit)

    def __len__(self) -> int:
        """Clients tracked now (the overflow entry not counted)."""
        return len(self._clients)

    def limited(self, key: str, now: float) -> bool:
        """Whether `key` has used its `limit` events in the window ending `now`."""
        q = self._find(key, now)
        if q is None:
            return False
        self._expire(q, now)
        return len(q) >= self.limit

    def record(self, key: str, now: float) -> None:
        """Count one event of `key` at `now`."""
        q = self._find(key, now)
        if q is None:
            q = self._clients[key] = deque(maxlen=self.limit)
        elif q is not self._overflow:
            self._clients.move_to_end(key)
        self._expire(q, now)
        q.append(now)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may have an event again (0 when it may now)."""
        q = self._find(key, now)
        if q is None:
            return 0.0
        self._expire(q, now)
        return max(0.0, q[0] + self.window - now) if len(q) >= self.limit else 0.0

    def take(self, key: str, now: float) -> bool:
        """Count an attempt unless `key` is limited; True if it is (nothing counted)."""
        if self.limited(key, now):
            return True
        self.record(key, now)
        return False

    def _find(self, key: str, now: float) -> deque[float] | None:
        """The entry counting `key`: its own, the overflow one when the table is full
        of active clients, or None when it has none and there is room for one."""
        q = self._clients.get(key)
        if q is not None:
            return q
        if len(self._clients) >= self.max_keys:
            self._drop_idle(now)
        return self._overflow if len(self._clients) >= self.max_keys else None

    def _expire(self, q: deque[float], now: float) -> None:
        while q and now - q[0] > self.window:
            q.popleft()

    def _drop_idle(self, now: float) -> None:
        """Forget clients whose last event left the window, least recent first."""
        while self._clients:
            key, q = next(iter(self._clients.items()))
            if q and now - q[-1] <= self.window:
                return  # this one, and every one after it, counted recently
            del self._clients[key]
