"""The VO sync core (sans-I/O): two cores driven against each other in memory,
and the VO host's platform path (export, freeze's delta, import) without sockets."""

from __future__ import annotations

import pytest

from netfate.vnf.runtime import Context
from netfate.vnf.vo import core
from netfate.vnf.vo.core import Frame, Frames, Puller, Pusher, VoError, VoStore
from netfate.vnf.vo.function import VoHost, application


def store(sizes: list[int]) -> VoStore:
    s = VoStore()
    for k, n in enumerate(sizes):
        s.add(k, f"user{k % 2}", f"1-{k + 1}", bytes([k]) * n)
    return s


def relay(data: bytes, side: Pusher | Puller, now: float, chunk: int = 7) -> tuple[bytes, list]:
    """Feed `data` to `side` in small pieces (the frames split anywhere)."""
    frames, out, events = Frames(), b"", []
    for i in range(0, len(data), chunk):
        for kind, seq, body in frames.feed(data[i : i + chunk]):
            more, ev = side.on_frame(kind, seq, body, now)
            out += more
            events += ev
    return out, events


def push(src: VoStore, dst: VoStore, *, grow: int = 0, **kw: object) -> tuple[Pusher, list]:
    """Run a whole push in memory; `grow` readings arrive at the source each round."""
    pusher, puller = Pusher(src, **kw), Puller(dst)  # type: ignore[arg-type]
    wire, events, t = pusher.start(), [], 0.0
    while pusher.phase != core.SourcePhase.HANDED:
        t += 1.0
        answer, _ = relay(wire, puller, t)
        if pusher.phase == core.SourcePhase.SYNCING:  # readings are held from FINAL on
            for vo in list(src.objects)[:grow]:
                src.append(vo, core.reading(t, 21.5))
        wire, ev = relay(answer, pusher, t)
        events += ev
        if pusher.ready and pusher.phase == core.SourcePhase.SYNCING:
            wire = pusher.finalize()
    return pusher, events


def test_objects_arrive_whole_and_rounds_shrink() -> None:
    sizes = [8 * 1024 + k * 7 * 1024 for k in range(10)]
    src, dst = store(sizes), VoStore()
    pusher, events = push(src, dst, grow=10, threshold=100, max_rounds=10)
    assert {vo: bytes(o.data) for vo, o in dst.objects.items()} == {
        vo: bytes(o.data) for vo, o in src.objects.items()
    }
    assert {o.user for o in dst.objects.values()} == {"user0", "user1"}
    rounds = [e for e in events if isinstance(e, core.RoundApplied)]
    assert rounds[0].nbytes == sum(sizes)
    assert all(r.nbytes <= 10 * core.READING.size for r in rounds[1:])
    assert [type(e) for e in events][-1] is core.TookOver
    assert pusher.sent_bytes > sum(sizes)


def test_rounds_stop_at_max_rounds_even_if_changes_keep_coming() -> None:
    src, dst = store([1000] * 3), VoStore()
    _, events = push(src, dst, grow=3, threshold=0, max_rounds=3)
    assert len([e for e in events if isinstance(e, core.RoundApplied)]) == 3
    assert dst.mark() == src.mark()


def test_the_application_goes_first_when_the_target_lacks_it() -> None:
    app = application()
    src, dst = store([100, 200]), VoStore()
    _, events = push(src, dst, app=app)
    assert isinstance(events[0], core.AppDelivered) and events[0].nbytes == len(app)
    assert dst.mark() == src.mark()


def test_a_round_on_another_base_is_refused_and_changes_nothing() -> None:
    dst = store([10, 20])
    before = {vo: bytes(o.data) for vo, o in dst.objects.items()}
    bad = [core.Piece(0, "u", "1-1", 10, b"ok"), core.Piece(1, "u", "1-2", 5, b"no")]
    with pytest.raises(VoError, match="builds on 5 bytes"):
        dst.apply(bad)
    assert {vo: bytes(o.data) for vo, o in dst.objects.items()} == before


def test_a_corrupt_application_and_out_of_order_frames_are_refused() -> None:
    puller = Puller(VoStore())
    body = b"\0" * 32 + b"zip"
    with pytest.raises(VoError, match="sha256"):
        puller.on_frame(Frame.APP, 0, body, 0.0)
    with pytest.raises(VoError, match="unexpected ACTIVE"):
        Pusher(store([1])).on_frame(Frame.ACTIVE, 1, b"\0" * 8, 0.0)
    pusher = Pusher(store([1]))
    with pytest.raises(core.IllegalStep):
        pusher.finalize()  # no round acknowledged yet


def test_frames_refuse_bad_lengths_and_types() -> None:
    with pytest.raises(VoError, match="frame length"):
        Frames().feed(b"\xff\xff\xff\xff")
    with pytest.raises(VoError, match="unknown frame type"):
        Frames().feed(core.LENGTH.pack(5) + b"\x09\0\0\0\0")


def host(objects: list[dict[str, object]], standby: bool = False) -> VoHost:
    return VoHost(Context("i-vo", {"objects": objects}, standby=standby))


def test_platform_freeze_exports_only_what_changed_since_the_snapshot() -> None:
    src = host(
        [{"vo": k, "user": "ann", "sensor": f"1-{k + 1}", "preload": 8192} for k in range(3)]
    )
    dst = host([], standby=True)
    snap = src.export_state()
    assert snap["kind"] == "full" and len(snap["pieces"]) == 3
    dst.import_state(snap)
    src.store.append(1, core.reading(1.0, 22.0))
    src.freeze()
    final = src.export_state()
    assert final["kind"] == "delta"
    assert [p["vo"] for p in final["pieces"]] == [1]
    assert src.serving == set()
    dst.import_state(final)
    dst.activate()
    assert dst.serving == {0, 1, 2}
    assert {vo: bytes(o.data) for vo, o in dst.store.objects.items()} == {
        vo: bytes(o.data) for vo, o in src.store.objects.items()
    }


def test_a_delta_on_a_copy_without_the_snapshot_is_refused() -> None:
    src = host([{"vo": 0, "user": "ann", "preload": 100}])
    src.export_state()
    src.store.append(0, core.reading(1.0, 22.0))
    src.freeze()
    with pytest.raises(VoError):
        host([], standby=True).import_state(src.export_state())
    with pytest.raises(VoError, match="kind"):
        host([]).import_state({"kind": "other"})


def test_the_target_takes_readings_only_once_released() -> None:
    # A target that never took over refuses a RELEASE.
    with pytest.raises(VoError, match="unexpected RELEASE"):
        relay(core.frame(Frame.RELEASE, 1), Puller(VoStore()), 0.0)
    # The whole exchange, ending in RELEASE.
    pusher, puller = Pusher(store([64, 128])), Puller(VoStore())
    wire = pusher.start()
    while pusher.phase != core.SourcePhase.HANDED:
        answer, ev = relay(wire, puller, 1.0)
        wire, _ = relay(answer, pusher, 2.0)
        if pusher.ready and pusher.phase == core.SourcePhase.SYNCING:
            wire = pusher.finalize()
    assert puller.phase == core.TargetPhase.ACTIVE
    out, ev = relay(pusher.release(), puller, 3.0)
    assert out == b"" and ev == [core.ReadingsReleased(3.0)]
    assert (pusher.phase, puller.phase) == (core.SourcePhase.RELEASED, core.TargetPhase.RELEASED)
    with pytest.raises(core.IllegalStep):
        pusher.release()
    with pytest.raises(VoError, match="unexpected RELEASE"):
        relay(core.frame(Frame.RELEASE, 2), puller, 4.0)


def test_seen_users_reach_the_source_while_it_hands_over() -> None:
    pusher, puller = Pusher(store([64])), Puller(VoStore())
    with pytest.raises(VoError, match="unexpected SEEN"):
        relay(core.seen_frame(0, []), pusher, 0.0)
    wire = pusher.start()
    while pusher.phase != core.SourcePhase.HANDED:
        answer, _ = relay(wire, puller, 1.0)
        wire, _ = relay(answer, pusher, 2.0)
        if pusher.ready and pusher.phase == core.SourcePhase.SYNCING:
            wire = pusher.finalize()
    users = [(bytes([10, 0, 0, 10]), 40000, 0), (bytes([10, 0, 0, 11]), 40001, 0)]
    out, ev = relay(core.seen_frame(0, users), pusher, 3.0)
    assert out == b"" and ev == [core.UsersLearnt(tuple(users), 3.0)]
    # A count that does not match the body is refused, not half-read.
    bad = core.seen_frame(0, users)[:-2]
    with pytest.raises(VoError):
        relay(core.LENGTH.pack(len(bad) - 4) + bad[4:], pusher, 4.0)
