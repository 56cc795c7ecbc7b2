"""Link emulator core: due times, ordering, seeded loss, limits (no I/O)."""

from __future__ import annotations

import pytest

from netfate.testbed.linkemu import LinkEmulator, LinkParams, Side


def test_frame_is_due_after_the_delay_and_leaves_by_the_other_side() -> None:
    emu = LinkEmulator()
    emu.add_link(1, LinkParams(delay_us=5000))
    assert emu.next_due() is None
    assert emu.receive(1, Side.A, b"f1", now=10.0)
    assert emu.next_due() == pytest.approx(10.005)
    assert emu.due(10.004) == []
    assert emu.due(10.005) == [(1, Side.B, b"f1")]
    assert emu.next_due() is None
    emu.receive(1, Side.B, b"back", now=11.0)
    assert emu.due(12.0) == [(1, Side.A, b"back")]


def test_zero_delay_is_due_immediately() -> None:
    emu = LinkEmulator()
    emu.add_link(0, LinkParams(delay_us=0))
    emu.receive(0, Side.A, b"x", now=1.0)
    assert emu.due(1.0) == [(0, Side.B, b"x")]


def test_order_is_kept_within_a_direction_and_across_links_by_due_time() -> None:
    emu = LinkEmulator()
    emu.add_link(1, LinkParams(delay_us=10_000))
    emu.add_link(2, LinkParams(delay_us=1_000))
    for i in range(5):
        emu.receive(1, Side.A, f"slow{i}".encode(), now=i * 0.001)
    emu.receive(2, Side.A, b"fast", now=0.0)
    out = emu.due(1.0)
    assert out[0] == (2, Side.B, b"fast")
    assert [f for _, _, f in out[1:]] == [f"slow{i}".encode() for i in range(5)]


def test_clock_stepping_back_does_not_reorder() -> None:
    emu = LinkEmulator()
    emu.add_link(1, LinkParams(delay_us=1000))
    emu.receive(1, Side.A, b"first", now=5.0)
    emu.receive(1, Side.A, b"second", now=4.0)
    assert [f for _, _, f in emu.due(10.0)] == [b"first", b"second"]


def test_frames_released_in_batches_as_time_passes() -> None:
    emu = LinkEmulator()
    emu.add_link(7, LinkParams(delay_us=2000))
    for i in range(10):
        emu.receive(7, Side.A, bytes([i]), now=i * 0.001)
    released: list[bytes] = []
    t = 0.0
    while emu.next_due() is not None:
        t = emu.next_due() or t
        batch = emu.due(t)
        assert batch
        released.extend(f for _, _, f in batch)
    assert released == [bytes([i]) for i in range(10)]
    st = emu.stats(7)["a->b"]
    assert (st.received, st.delivered, st.queued) == (10, 10, 0)


def test_seeded_loss_is_reproducible_and_close_to_rate() -> None:
    def run(seed: int) -> list[int]:
        emu = LinkEmulator(seed=seed)
        emu.add_link(1, LinkParams(delay_us=0, loss=0.2))
        return [i for i in range(5000) if emu.receive(1, Side.A, b"x", now=float(i))]

    first, again, other = run(42), run(42), run(43)
    assert first == again
    assert first != other
    lost = 5000 - len(first)
    assert 850 < lost < 1150  # 20 % of 5000, well within 5 sigma


def test_loss_of_one_link_does_not_depend_on_other_traffic() -> None:
    def kept_on_link_1(with_other_traffic: bool) -> list[int]:
        emu = LinkEmulator(seed=1)
        emu.add_link(1, LinkParams(delay_us=0, loss=0.5))
        emu.add_link(2, LinkParams(delay_us=0, loss=0.5))
        kept = []
        for i in range(200):
            if with_other_traffic:
                emu.receive(2, Side.A, b"o", now=float(i))
                emu.receive(1, Side.B, b"o", now=float(i))
            if emu.receive(1, Side.A, b"x", now=float(i)):
                kept.append(i)
        return kept

    assert kept_on_link_1(False) == kept_on_link_1(True)


def test_loss_extremes_and_stats() -> None:
    emu = LinkEmulator()
    emu.add_link(1, LinkParams(delay_us=0, loss=1.0))
    emu.add_link(2, LinkParams(delay_us=0, loss=0.0))
    assert not any(emu.receive(1, Side.A, b"x", now=0.0) for _ in range(100))
    assert all(emu.receive(2, Side.B, b"x", now=0.0) for _ in range(100))
    assert emu.stats(1)["a->b"].lost == 100
    assert emu.stats(2)["b->a"].queued == 100
    assert emu.stats(2)["a->b"].received == 0


def test_limit_tail_drops() -> None:
    emu = LinkEmulator()
    emu.add_link(1, LinkParams(delay_us=1000, limit=3))
    results = [emu.receive(1, Side.A, bytes([i]), now=0.0) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert emu.stats(1)["a->b"].overflow == 2
    assert [f for _, _, f in emu.due(1.0)] == [b"\x00", b"\x01", b"\x02"]
    assert emu.receive(1, Side.A, b"again", now=1.0)  # room again once delivered


def test_bad_parameters_and_links() -> None:
    with pytest.raises(ValueError):
        LinkParams(delay_us=-1)
    with pytest.raises(ValueError):
        LinkParams(delay_us=0, loss=1.5)
    with pytest.raises(ValueError):
        LinkParams(delay_us=0, limit=0)
    emu = LinkEmulator()
    emu.add_link(1, LinkParams(delay_us=0))
    with pytest.raises(ValueError):
        emu.add_link(1, LinkParams(delay_us=0))
    with pytest.raises(KeyError):
        emu.receive(9, Side.A, b"x", now=0.0)
    assert emu.link_ids == [1]
    assert Side.A.other is Side.B and Side.B.other is Side.A


def test_due_timed_gives_due_times() -> None:
    emu = LinkEmulator()
    emu.add_link(3, LinkParams(delay_us=2000))
    emu.receive(3, Side.B, b"x", now=1.0)
    ((due, link, side, frame),) = emu.due_timed(1.5)
    assert due == pytest.approx(1.002) and (link, side, frame) == (3, Side.A, b"x")


def test_lateness_histogram() -> None:
    from netfate.testbed.linkemu_driver import Lateness

    late = Lateness()
    assert late.summary()["p99_us_at_most"] is None
    for _ in range(98):
        late.add(0.00005)  # 50 us
    late.add(0.0015)
    late.add(-0.001)  # early (clock granularity) counts as on time
    s = late.summary()
    assert s["frames"] == 100
    assert s["p50_us_at_most"] == 100.0
    assert s["p99_us_at_most"] == 100.0
    assert s["max_us"] == pytest.approx(1500.0)
    late.add(5.0)  # beyond the histogram: last bucket
    assert late.percentile_us(100) == 100_000.0
