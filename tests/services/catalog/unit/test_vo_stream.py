"""What a user's request stream saw of a move (stream.excess_wait, pure): a wait is
measured against the usual latency of the place that answered, so a farther new
place is not downtime, while a request that waited through a pause is."""

from __future__ import annotations

from netfate.vnf.vo.stream import Seen, excess_wait


def _stream(pause_at: float | None, pause_s: float) -> Seen:
    """1 kHz for 3 s: host 1 answers in 0.2 ms until t=1.5, then host 2 in 5 ms (a
    farther place); a pause at `pause_at` holds the requests sent during it until it
    ends; request 100 is never answered."""
    seen = Seen()
    for q in range(3000):
        t = q / 1000
        seen.sent.append(t)
        seen.vo.append(q % 10)
        if q == 100:
            continue
        host, lat = (1, 0.0002) if t < 1.5 else (2, 0.005)
        done = t + lat
        if pause_at is not None and pause_at <= t < pause_at + pause_s:
            done = pause_at + pause_s + lat
        seen.answers[q] = (done, host, done - lat / 2, q)
    return seen


def test_a_farther_new_place_is_not_a_wait() -> None:
    w = excess_wait(_stream(None, 0.0), 1, 2, 1.4, 1.6)
    assert w["usual_ms"] == {"1": 0.2, "2": 5.0}
    assert w["max_ms"] == 0.0 and w["baseline_max_ms"] == 0.0
    # The lost request is before the window's baseline span: counted, not a wait.
    assert w["unanswered"] == {"before": 0, "window": 0, "after": 0}


def test_a_pause_in_the_window_is_the_wait_and_losses_are_counted_apart() -> None:
    w = excess_wait(_stream(1.45, 0.003), 1, 2, 1.4, 1.6)
    # The first request of the pause waited the whole 3 ms beyond its 0.2 ms.
    assert abs(w["max_ms"] - 3.0) < 1e-6
    assert w["baseline_max_ms"] == 0.0
    w = excess_wait(_stream(None, 0.0), 1, 2, 0.05, 0.15)
    assert w["unanswered"]["window"] == 1
