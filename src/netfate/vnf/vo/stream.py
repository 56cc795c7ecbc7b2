"""A user's request stream against VO hosts, and what it saw.

`Stream` sends `rate` requests a second (10 kHz and more), round-robin over the
objects, each to the host that serves that object as far as this user knows: it
learns a new place from an OK answer that comes from a new address (a forwarded
request is answered by the new host; a HANDED answer, from the old host while it
hands over, is a good reading but not a place to learn). A sender thread and a receiver thread, on
one socket (made by the caller, e.g. inside a namespace); every time is
CLOCK_MONOTONIC, the hosts' clock too (one machine), so a host's `served_at` and
this side's stamps compare directly.

`analyse` is pure: which requests failed (no OK answer), and the largest gap
between two consecutive servings (any host) in a window, next to the same figure
in an equally long window before it (the stream's own granularity). What a user
feels is `excess_wait_ms`: a request's wait beyond the usual service time of the
place that answered it (its median latency outside the window: before it for the
old host, after it for the new), the worst over the window, next to the same
figure for the equally long window before it (the machine's noise, no migration).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netfate.vnf.vo import wire


@dataclass
class Seen:
    sent: list[float] = field(default_factory=list)
    """Per seq (its index): when it left."""
    vo: list[int] = field(default_factory=list)
    answers: dict[int, tuple[float, int, float, int]] = field(default_factory=dict)
    """seq -> (received at, host, served_at, readings the object held); the first good
    answer (OK or HANDED) wins."""
    duplicates: int = 0
    moves: list[tuple[float, int, str]] = field(default_factory=list)
    """(when, object, new address) the stream learnt."""


def big_buffers(sock: socket.socket, size: int = 16 << 20) -> None:
    """Room for seconds of a 10 kHz stream: a process starved of CPU for a while
    (a loaded machine) finds its requests waiting, not dropped. Beyond rmem_max
    where allowed (root)."""
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # *BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)


class Stream:
    def __init__(
        self, sock: socket.socket, where: dict[int, tuple[str, int]], rate: float = 10_000.0
    ) -> None:
        """`where`: each object's host as the user knows it at the start."""
        self.sock = sock
        self.where = dict(where)
        self.vos = sorted(where)
        self.rate = rate
        self.seen = Seen()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sock.settimeout(0.1)
        big_buffers(self.sock)

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._send, name="vo-stream-send", daemon=True),
            threading.Thread(target=self._receive, name="vo-stream-recv", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, drain_s: float = 5.0) -> Seen:
        """Stop sending, wait for the answers still due (at most `drain_s`), return
        what was seen."""
        self._sending = False
        deadline = time.monotonic() + drain_s
        while len(self.seen.answers) < len(self.seen.sent) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        for t in self._threads:
            t.join(5)
        return self.seen

    _sending = True

    def _send(self) -> None:
        seen, period = self.seen, 1.0 / self.rate
        due = time.monotonic()
        while self._sending and not self._stop.is_set():
            now = time.monotonic()
            while due <= now:
                seq = len(seen.sent)
                vo = self.vos[seq % len(self.vos)]
                req = wire.encode_request(wire.Request(wire.Kind.READ, vo, seq))
                seen.sent.append(time.monotonic())
                seen.vo.append(vo)
                with contextlib.suppress(OSError):  # counted as failed: no answer
                    self.sock.sendto(req, self.where[vo])
                due += period
            time.sleep(max(0.0, due - time.monotonic()))

    def _receive(self) -> None:
        seen = self.seen
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(256)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            try:
                a = wire.decode_answer(data)
            except wire.WireError:
                continue
            if a.status not in (wire.Status.OK, wire.Status.HANDED):
                continue
            src = (str(addr[0]), int(addr[1]))
            # A HANDED answer is good but comes from the old place: not learnt.
            if a.status == wire.Status.OK and self.where.get(a.vo) != src:
                self.where[a.vo] = src
                seen.moves.append((at, a.vo, f"{src[0]}:{src[1]}"))
            if a.seq in seen.answers:
                seen.duplicates += 1
                continue
            seen.answers[a.seq] = (at, a.host, a.served_at, a.count)


def _largest_gap(stamps: Sequence[float], lo: float, hi: float) -> float:
    inside = [t for t in stamps if lo <= t <= hi]
    if len(inside) < 2:
        return hi - lo
    return max(b - a for a, b in itertools.pairwise(inside))


def _median(xs: Sequence[float]) -> float | None:
    ys = sorted(xs)
    return ys[len(ys) // 2] if ys else None


def excess_wait(seen: Seen, old: int, new: int, lo: float, hi: float) -> dict[str, Any]:
    """A request's wait beyond its usual service time, in ms: per answering host, the
    usual time is the median latency of the requests it answered outside [lo, hi]
    (before lo for `old`, after hi for `new`: the new place may be farther, that is
    not downtime). `max_ms` over the answered requests sent in [lo, hi];
    `baseline_max_ms` the same over the window of equal length before lo (no
    migration: the machine's noise). Requests never answered are counted apart, in
    the window, before it and after it (after: the new path's own losses)."""
    lat: dict[int, list[tuple[float, float]]] = {old: [], new: []}
    for q, t in enumerate(seen.sent):
        a = seen.answers.get(q)
        if a is not None and a[1] in lat:
            lat[a[1]].append((t, a[0] - t))
    usual = {
        old: _median([x for t, x in lat[old] if t < lo]),
        new: _median([x for t, x in lat[new] if t > hi]),
    }

    def worst_at(a: float, b: float) -> tuple[float, float, int] | None:
        out: tuple[float, float, int] | None = None
        for h, xs in lat.items():
            base = usual[h]
            for t, x in xs:
                if base is not None and a <= t <= b and (out is None or x - base > out[0]):
                    out = (x - base, t, h)
        return out

    def worst(a: float, b: float) -> float | None:
        w = worst_at(a, b)
        return None if w is None else round(max(0.0, w[0]) * 1e3, 3)

    def unanswered(a: float, b: float) -> int:
        return sum(1 for q, t in enumerate(seen.sent) if a <= t <= b and q not in seen.answers)

    end = seen.sent[-1] if seen.sent else hi
    w = worst_at(lo, hi)
    return {
        "max_ms": worst(lo, hi),
        # When the request that waited most was sent: placed among the push stamps.
        "max_sent_at": None if w is None else w[1],
        "max_host": None if w is None else w[2],
        "baseline_max_ms": worst(lo - (hi - lo), lo),
        "usual_ms": {str(h): None if u is None else round(u * 1e3, 3) for h, u in usual.items()},
        "unanswered": {
            "before": unanswered(lo - (hi - lo), lo),
            "window": unanswered(lo, hi),
            "after": unanswered(hi, end),
        },
    }


def analyse(seen: Seen, old: int, new: int, lo: float, hi: float) -> dict[str, Any]:
    """What the user saw of a move from host `old` to host `new` during [lo, hi]
    (CLOCK_MONOTONIC), and the same window length just before it as a baseline."""
    served = sorted(s for (_, _, s, _) in seen.answers.values())
    old_last = max((s for (_, h, s, _) in seen.answers.values() if h == old), default=None)
    new_first = min((s for (_, h, s, _) in seen.answers.values() if h == new), default=None)
    latencies = sorted(
        (seen.answers[q][0] - t) * 1e3
        for q, t in enumerate(seen.sent)
        if q in seen.answers and lo <= t <= hi
    )

    def pct(p: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)
            if latencies
            else None
        )

    sent = len(seen.sent)
    duration = (seen.sent[-1] - seen.sent[0]) if sent > 1 else 0.0
    return {
        "sent": sent,
        "answered": len(seen.answers),
        "failed": sent - len(seen.answers),
        "duplicates": seen.duplicates,
        "rate_hz": round(sent / duration, 1) if duration else None,
        "by_host": {
            str(h): sum(1 for (_, hh, _, _) in seen.answers.values() if hh == h) for h in (old, new)
        },
        "old_last_served": old_last,
        "new_first_served": new_first,
        "serving_gap_ms": (
            round(max(0.0, new_first - old_last) * 1e3, 3)
            if old_last is not None and new_first is not None
            else None
        ),
        "max_gap_ms": round(_largest_gap(served, lo, hi) * 1e3, 3),
        "baseline_max_gap_ms": round(_largest_gap(served, lo - (hi - lo), lo) * 1e3, 3),
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "excess_wait_ms": excess_wait(seen, old, new, lo, hi),
        "learnt_moves": len(seen.moves),
    }
