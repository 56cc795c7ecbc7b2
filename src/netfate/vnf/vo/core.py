"""Virtual Objects and their on-the-fly synchronisation: the sans-I/O core.

A Virtual Object (the INPUT paper's VO, issue 15 section 5) is the virtual image of
one smart object's sensor, kept for one user in a PaaS-like host (`VoHost`): an
append-only log of readings. A host holds several (the paper: 10 per instance,
8-78 KB each). Moving them to another host that already runs is *state-only*
migration: the objects are copied while both hosts run, in rounds, each round
carrying only what changed since the previous one; then the source stops taking
readings, sends the last changes and asks the target to take over; it answers
reads from its (held, so identical) state until its users have learnt the new
place, then releases the target's readings:

    source (Pusher)                                   target (Puller)
      ROUND  all objects (base: nothing)     ----->   applied; ACK with lengths
      ROUND  what grew since the last mark   ----->   applied (base checked); ACK
      ... until a round is under `threshold` bytes or `max_rounds` were sent
      FINAL  the last changes (writes held)  ----->   applied; objects served
                                             <-----   ACTIVE, active_at (readings
                                                      still held: same state)
      (both serve; the source also forwards each read so that the target's
       answer teaches the user the new place)
                                             <-----   SEEN (user, object): a user's
                                                      own read came here: it learnt
      (once every user that read there was seen at the target, or at a bound,
       the source stops serving them and forwards only)
      RELEASE                                ----->   readings taken again here

The core never reads a clock or a socket: the driver (function.py) passes `now`
and moves the frames. A frame whose base does not match what the target holds is
refused (VoError), never half-applied.

Frames (each prefixed by its length, u32 big-endian, on a TCP stream):

    0      1      5
    +------+------+-------------------------------------------------+
    | type | seq  | body                                            |
    +------+------+-------------------------------------------------+
    type  u8   1 ROUND, 2 FINAL, 3 ACK, 4 ACTIVE, 5 APP, 6 APP_ACK, 7 RELEASE, 8 SEEN
    seq   u32  the round's number (ACK/ACTIVE: the round answered; RELEASE: FINAL's)

    ROUND/FINAL body: count u16, then per piece
      vo u8 | base u32 (length the target must hold; 0xFFFFFFFF: new object)
      | user_len u8 | user | sensor_len u8 | sensor | data_len u32 | data
    ACK body: count u16, then per object vo u8 | length u32
    ACTIVE body: active_at f64 (the target's clock; one machine: one clock)
    APP body: sha256 (32) | the application's bytes (a zip), APP_ACK body: empty
    RELEASE body: empty (the source no longer serves: readings may change now)
    SEEN body: count u16, then per user ipv4 (4) | port u16 | vo u8

A reading in an object's log is 10 bytes: at f64 (seconds), centi-celsius i16.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

READING = struct.Struct("!dh")
LENGTH = struct.Struct("!I")
HEADER = struct.Struct("!BI")
PIECE = struct.Struct("!BI")
ACK_ITEM = struct.Struct("!BI")
NEW = 0xFFFFFFFF
MAX_FRAME = 64 << 20
MAX_VO = 255


class VoError(ValueError):
    """Bad frame or request bytes, or a frame that does not fit what is held here."""


class Frame(IntEnum):
    ROUND = 1
    FINAL = 2
    ACK = 3
    ACTIVE = 4
    APP = 5
    APP_ACK = 6
    RELEASE = 7
    SEEN = 8


def reading(at: float, celsius: float) -> bytes:
    return READING.pack(at, max(-32768, min(32767, round(celsius * 100))))


def readings(data: bytes) -> Iterator[tuple[float, float]]:
    """The (at, celsius) readings of an object's log."""
    for off in range(0, len(data) - len(data) % READING.size, READING.size):
        at, centi = READING.unpack_from(data, off)
        yield at, centi / 100


@dataclass
class VirtualObject:
    vo: int
    user: str
    sensor: str
    """Where its readings come from (the HRH's busid of the sensor)."""
    data: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Piece:
    """One object's part of a round: `data` goes at `base` (NEW: the whole object)."""

    vo: int
    user: str
    sensor: str
    base: int
    data: bytes


class VoStore:
    """The objects one host holds."""

    def __init__(self) -> None:
        self.objects: dict[int, VirtualObject] = {}

    def add(self, vo: int, user: str, sensor: str, data: bytes = b"") -> VirtualObject:
        if not 0 <= vo <= MAX_VO:
            raise VoError(f"object number {vo} outside 0..{MAX_VO}")
        if vo in self.objects:
            raise VoError(f"object {vo} is already here")
        obj = VirtualObject(vo, user, sensor, bytearray(data))
        self.objects[vo] = obj
        return obj

    def append(self, vo: int, record: bytes) -> None:
        self.objects[vo].data += record

    def mark(self) -> dict[int, int]:
        """Each object's length now: what a round sent, the base of the next."""
        return {vo: len(o.data) for vo, o in self.objects.items()}

    def since(self, mark: Mapping[int, int] | None) -> list[Piece]:
        """What changed since `mark` (None: everything), in object order."""
        out = []
        for vo in sorted(self.objects):
            o = self.objects[vo]
            base = NEW if mark is None or vo not in mark else mark[vo]
            start = 0 if base == NEW else base
            if base != NEW and start == len(o.data):
                continue
            out.append(Piece(vo, o.user, o.sensor, base, bytes(o.data[start:])))
        return out

    def apply(self, pieces: Iterable[Piece]) -> None:
        """Apply a round; every base is checked first, so a bad round changes nothing."""
        pieces = list(pieces)
        for p in pieces:
            held = self.objects.get(p.vo)
            if p.base == NEW:
                continue
            if held is None or len(held.data) != p.base:
                have = "nothing" if held is None else f"{len(held.data)} bytes"
                raise VoError(f"object {p.vo}: the round builds on {p.base} bytes, here {have}")
        for p in pieces:
            if p.base == NEW:
                self.objects[p.vo] = VirtualObject(p.vo, p.user, p.sensor, bytearray(p.data))
            else:
                self.objects[p.vo].data += p.data

    def nbytes(self) -> int:
        return sum(len(o.data) for o in self.objects.values())


# ------------------------------------------------------------------ frames


def frame(kind: Frame, seq: int, body: bytes = b"") -> bytes:
    return LENGTH.pack(HEADER.size + len(body)) + HEADER.pack(kind, seq) + body


def active_frame(seq: int, active_at: float) -> bytes:
    """The target's answer to FINAL `seq`: it serves since `active_at`."""
    return frame(Frame.ACTIVE, seq, struct.pack("!d", active_at))


SEEN_ITEM = struct.Struct("!4sHB")
User = tuple[bytes, int, int]
"""(IPv4 address, 4 bytes; port; object): a user's reads of one object."""


def seen_frame(seq: int, users: Iterable[User]) -> bytes:
    """(target) These users read these objects here directly: they know the place."""
    items = list(users)
    body = struct.pack("!H", len(items)) + b"".join(SEEN_ITEM.pack(*u) for u in items)
    return frame(Frame.SEEN, seq, body)


def _text(b: bytes, what: str) -> bytes:
    if len(b) > 255:
        raise VoError(f"{what} longer than 255 bytes")
    return bytes([len(b)]) + b


def encode_pieces(pieces: Iterable[Piece]) -> bytes:
    pieces = list(pieces)
    out = [struct.pack("!H", len(pieces))]
    for p in pieces:
        out += [PIECE.pack(p.vo, p.base), _text(p.user.encode(), "user")]
        out += [_text(p.sensor.encode(), "sensor"), LENGTH.pack(len(p.data)), p.data]
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise VoError("frame truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def unpack(self, s: struct.Struct) -> tuple[int, ...]:
        return tuple(s.unpack(self.take(s.size)))

    def text(self) -> str:
        try:
            return self.take(self.take(1)[0]).decode()
        except UnicodeDecodeError as e:
            raise VoError(f"bad text: {e}") from None

    def done(self) -> None:
        if self.at != len(self.data):
            raise VoError(f"{len(self.data) - self.at} bytes after the frame's body")


def decode_pieces(body: bytes) -> list[Piece]:
    r = _Reader(body)
    (count,) = r.unpack(struct.Struct("!H"))
    out = []
    for _ in range(count):
        vo, base = r.unpack(PIECE)
        user, sensor = r.text(), r.text()
        (n,) = r.unpack(LENGTH)
        out.append(Piece(vo, user, sensor, base, r.take(n)))
    r.done()
    return out


def encode_lengths(mark: Mapping[int, int]) -> bytes:
    return struct.pack("!H", len(mark)) + b"".join(
        ACK_ITEM.pack(vo, n) for vo, n in sorted(mark.items())
    )


def decode_lengths(body: bytes) -> dict[int, int]:
    r = _Reader(body)
    (count,) = r.unpack(struct.Struct("!H"))
    out = {}
    for _ in range(count):
        vo, n = r.unpack(ACK_ITEM)
        out[vo] = n
    r.done()
    return out


class Frames:
    """Splits a byte stream into frames: feed bytes, take (type, seq, body)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[Frame, int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= LENGTH.size:
            (n,) = LENGTH.unpack_from(self.buf)
            if n < HEADER.size or n > MAX_FRAME:
                raise VoError(f"frame length {n} outside {HEADER.size}..{MAX_FRAME}")
            if len(self.buf) < LENGTH.size + n:
                break
            kind, seq = HEADER.unpack_from(self.buf, LENGTH.size)
            body = bytes(self.buf[LENGTH.size + HEADER.size : LENGTH.size + n])
            del self.buf[: LENGTH.size + n]
            try:
                out.append((Frame(kind), seq, body))
            except ValueError:
                raise VoError(f"unknown frame type {kind}") from None
        return out


# ------------------------------------------------------------------ the two sides
#
# Source (one push of all its objects to one target):
#
#     idle ──▶ app ──▶ syncing ⟲ ──▶ final ──▶ handed ──▶ released
#       │                 │            │
#       └──▶ syncing      └────────────┴──▶ aborted (the target is lost: serve on)
#
#   app      the application's image is on its way (when the target lacks it)
#   syncing  rounds go while both run; each waits for its ACK
#   final    readings are held here; the last round and the take-over are asked
#   handed   the target serves the objects too (readings held on both sides):
#            this side answers reads and forwards each, so users learn the place
#   released this side stopped serving them and forwards what reaches it; the
#            target takes readings again
#
# Target (one push received):
#
#     idle ──▶ receiving ⟲ ──▶ active ──▶ released      receiving ──▶ aborted
#
#   active   serves the objects, readings still held (the source serves too)
#   released the source stopped: readings taken here (also when the sync
#            connection drops after active: the target is then the one place)


class SourcePhase(StrEnum):
    IDLE = "idle"
    APP = "app"
    SYNCING = "syncing"
    FINAL = "final"
    HANDED = "handed"
    RELEASED = "released"
    ABORTED = "aborted"


class TargetPhase(StrEnum):
    IDLE = "idle"
    RECEIVING = "receiving"
    ACTIVE = "active"
    RELEASED = "released"
    ABORTED = "aborted"


Sp, Tp = SourcePhase, TargetPhase
SOURCE_STEPS: dict[SourcePhase, frozenset[SourcePhase]] = {
    Sp.IDLE: frozenset({Sp.APP, Sp.SYNCING, Sp.ABORTED}),
    Sp.APP: frozenset({Sp.SYNCING, Sp.ABORTED}),
    Sp.SYNCING: frozenset({Sp.SYNCING, Sp.FINAL, Sp.ABORTED}),
    Sp.FINAL: frozenset({Sp.HANDED, Sp.ABORTED}),
    Sp.HANDED: frozenset({Sp.RELEASED}),
    Sp.RELEASED: frozenset(),
    Sp.ABORTED: frozenset(),
}
TARGET_STEPS: dict[TargetPhase, frozenset[TargetPhase]] = {
    Tp.IDLE: frozenset({Tp.RECEIVING, Tp.ABORTED}),
    Tp.RECEIVING: frozenset({Tp.RECEIVING, Tp.ACTIVE, Tp.ABORTED}),
    Tp.ACTIVE: frozenset({Tp.RELEASED}),
    Tp.RELEASED: frozenset(),
    Tp.ABORTED: frozenset(),
}


class IllegalStep(VoError):
    pass


def _check(table: Mapping[Any, frozenset[Any]], side: str, now: str, to: str) -> None:
    if to not in table[now]:
        raise IllegalStep(f"VO sync {side}: cannot go from '{now}' to '{to}'")


# Events, past tense (DESIGN.md convention 5).


@dataclass(frozen=True)
class RoundApplied:
    """The target applied round `seq`."""

    seq: int
    """The round's number (1: the first, every object whole)."""
    nbytes: int
    """Bytes of the objects' data the round carried."""
    at: float
    """When its ACK arrived (the driver's `now`)."""


@dataclass(frozen=True)
class AppDelivered:
    """The target holds the application's image (checked against its sha256)."""

    nbytes: int
    at: float


@dataclass(frozen=True)
class TookOver:
    """The target serves the objects now."""

    active_at: float
    """When it started serving (its clock)."""
    at: float
    """When the source heard it."""


@dataclass(frozen=True)
class ObjectsActivated:
    """(target) The final round is applied: these objects are served here from now."""

    vos: tuple[int, ...]
    at: float


@dataclass(frozen=True)
class ReadingsReleased:
    """(target) The source stopped serving: the objects take readings here again."""

    at: float


@dataclass(frozen=True)
class UsersLearnt:
    """(source) The target saw these users read these objects there directly."""

    users: tuple[User, ...]
    at: float


Event = RoundApplied | AppDelivered | TookOver | ObjectsActivated | ReadingsReleased | UsersLearnt


class Pusher:
    """The source side of one push. The driver sends what `start` and `on_frame`
    return and calls `finalize` (after holding readings) when `ready` says so."""

    def __init__(
        self, store: VoStore, *, threshold: int = 4096, max_rounds: int = 5,
        app: bytes | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.threshold = threshold
        self.max_rounds = max(1, max_rounds)
        self.app = app
        self.phase = Sp.IDLE
        self.seq = 0
        self.mark: dict[int, int] | None = None
        self.sent_bytes = 0
        """Frame bytes sent (objects, application, headers)."""
        self.last_round = 0
        """Object bytes of the last round sent."""
        self.ready = False
        """Rounds are done: time to hold readings and `finalize`."""

    def _to(self, phase: SourcePhase) -> None:
        _check(SOURCE_STEPS, "source", self.phase, phase)
        self.phase = phase

    def _send(self, data: bytes) -> bytes:
        self.sent_bytes += len(data)
        return data

    def start(self) -> bytes:
        if self.app is not None:
            self._to(Sp.APP)
            return self._send(frame(Frame.APP, 0, hashlib.sha256(self.app).digest() + self.app))
        return self._round()

    def _round(self) -> bytes:
        self._to(Sp.SYNCING)
        pieces = self.store.since(self.mark)
        self.mark = self.store.mark()
        self.seq += 1
        self.last_round = sum(len(p.data) for p in pieces)
        return self._send(frame(Frame.ROUND, self.seq, encode_pieces(pieces)))

    def finalize(self) -> bytes:
        """The last round: call it once readings are held (nothing changes any more)."""
        if self.phase != Sp.SYNCING or not self.ready:
            raise IllegalStep(f"VO sync source: cannot finalize in '{self.phase}'")
        self._to(Sp.FINAL)
        pieces = self.store.since(self.mark)
        self.mark = self.store.mark()
        self.seq += 1
        return self._send(frame(Frame.FINAL, self.seq, encode_pieces(pieces)))

    def release(self) -> bytes:
        """This side stopped serving the objects: the target may take readings."""
        self._to(Sp.RELEASED)
        return self._send(frame(Frame.RELEASE, self.seq))

    def abort(self) -> None:
        if self.phase not in (Sp.HANDED, Sp.RELEASED, Sp.ABORTED):
            self._to(Sp.ABORTED)

    def on_frame(self, kind: Frame, seq: int, body: bytes, now: float) -> tuple[bytes, list[Event]]:
        """A frame from the target: the next bytes to send (maybe none) and events."""
        if kind == Frame.APP_ACK and self.phase == Sp.APP:
            return self._round(), [AppDelivered(len(self.app or b""), now)]
        if kind == Frame.ACK and self.phase == Sp.SYNCING and seq == self.seq:
            held = decode_lengths(body)
            if self.mark is not None and held != self.mark:
                raise VoError(f"round {seq}: the target holds {held}, sent {self.mark}")
            ev: list[Event] = [RoundApplied(seq, self.last_round, now)]
            if self.last_round <= self.threshold or self.seq >= self.max_rounds:
                self.ready = True
                return b"", ev
            return self._round(), ev
        if kind == Frame.ACTIVE and self.phase == Sp.FINAL and seq == self.seq:
            (active_at,) = struct.unpack("!d", _Reader(body).take(8))
            self._to(Sp.HANDED)
            return b"", [TookOver(active_at, now)]
        if kind == Frame.SEEN and self.phase in (Sp.HANDED, Sp.RELEASED):
            r = _Reader(body)
            (n,) = r.unpack(struct.Struct("!H"))
            users = tuple(
                (bytes(ip), int(port), int(vo))
                for ip, port, vo in (SEEN_ITEM.unpack(r.take(SEEN_ITEM.size)) for _ in range(n))
            )
            r.done()
            return b"", [UsersLearnt(users, now)]
        raise VoError(f"unexpected {kind.name} {seq} in phase '{self.phase}'")


class Puller:
    """The target side of one push: feed it frames, send back what it returns."""

    def __init__(self, store: VoStore) -> None:
        self.store = store
        self.phase = Tp.IDLE
        self.app: bytes | None = None
        self.received = 0

    def _to(self, phase: TargetPhase) -> None:
        _check(TARGET_STEPS, "target", self.phase, phase)
        self.phase = phase

    def on_frame(
        self, kind: Frame, seq: int, body: bytes, now: float, active_at: float | None = None
    ) -> tuple[bytes, list[Event]]:
        """`active_at`: for FINAL, when the driver makes the objects serve (it passes
        the stamp it will serve from; `now` if None)."""
        self.received += len(body) + HEADER.size + LENGTH.size
        if kind == Frame.APP and self.phase == Tp.IDLE:
            r = _Reader(body)
            digest = r.take(32)
            app = body[32:]
            if hashlib.sha256(app).digest() != digest:
                raise VoError("the application's image does not match its sha256")
            self.app = app
            return frame(Frame.APP_ACK, 0), []
        if kind in (Frame.ROUND, Frame.FINAL) and self.phase in (Tp.IDLE, Tp.RECEIVING):
            pieces = decode_pieces(body)
            self.store.apply(pieces)
            if kind == Frame.ROUND:
                self._to(Tp.RECEIVING)
                return frame(Frame.ACK, seq, encode_lengths(self.store.mark())), []
            if self.phase == Tp.IDLE:
                self._to(Tp.RECEIVING)
            self._to(Tp.ACTIVE)
            at = now if active_at is None else active_at
            vos = tuple(sorted(self.store.objects))
            return active_frame(seq, at), [ObjectsActivated(vos, at)]
        if kind == Frame.RELEASE and self.phase == Tp.ACTIVE and not body:
            self._to(Tp.RELEASED)
            return b"", [ReadingsReleased(now)]
        raise VoError(f"unexpected {kind.name} {seq} in phase '{self.phase}'")

    def abort(self) -> None:
        if self.phase not in (Tp.ACTIVE, Tp.RELEASED):
            self._to(Tp.ABORTED)
