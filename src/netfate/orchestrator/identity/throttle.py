"""Failed sign-ins counted per key in bounded memory (sans-I/O: callers pass `now`).

A key (a client address, an account name) may fail `limit` times in any `window`
seconds; then it is refused (429) until its oldest failure leaves the window.

Memory is bounded whatever keys show up: at most `max_keys` keys of at most `limit`
timestamps each, least recently failed first out. A key still inside its window
is not dropped while an idle one can be (forgetting a limited key would let a
flood of other keys unlock it); when every tracked key is active, new keys share
one overflow entry, so under a flood of distinct keys the limit still holds for
them together.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class FailureCounter:
    def __init__(self, limit: int, window: float, max_keys: int = 4096) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys at least 1, window positive")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._keys: OrderedDict[str, deque[float]] = OrderedDict()
        self._overflow: deque[float] = deque(maxlen=limit)

    def __len__(self) -> int:
        return len(self._keys)

    def limited(self, key: str, now: float) -> bool:
        """Whether `key` failed `limit` times in the window ending `now`."""
        q = self._find(key, now)
        if q is None:
            return False
        self._expire(q, now)
        return len(q) >= self.limit

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0 when it may now)."""
        q = self._find(key, now)
        if q is None:
            return 0.0
        self._expire(q, now)
        return max(0.0, q[0] + self.window - now) if len(q) >= self.limit else 0.0

    def failed(self, key: str, now: float) -> None:
        """Count one failure of `key` at `now`."""
        q = self._find(key, now)
        if q is None:
            q = self._keys[key] = deque(maxlen=self.limit)
        elif q is not self._overflow:
            self._keys.move_to_end(key)
        self._expire(q, now)
        q.append(now)

    def _find(self, key: str, now: float) -> deque[float] | None:
        q = self._keys.get(key)
        if q is not None:
            return q
        if len(self._keys) >= self.max_keys:
            self._drop_idle(now)
        return self._overflow if len(self._keys) >= self.max_keys else None

    def _expire(self, q: deque[float], now: float) -> None:
        while q and now - q[0] > self.window:
            q.popleft()

    def _drop_idle(self, now: float) -> None:
        while self._keys:
            key, q = next(iter(self._keys.items()))
            if q and now - q[-1] <= self.window:
                return  # this key and every later one failed recently
            del self._keys[key]
