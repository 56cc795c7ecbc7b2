"""A PaaS-like host of Virtual Objects (``python -m netfate.vnf
netfate.vnf.vo.function:VoHost --config JSON``; descriptor ``vo-host``).

Config::

    {"host": 1, "port": 7780, "sync_port": 7781,
     "objects": [{"vo": 0, "user": "ann", "sensor": "1-1", "preload": 8192}, ...],
     "feed": {"kind": "usbip", "server": "10.0.0.1", "port": 3240}
             | {"kind": "local", "period": 0.05}}

Each object collects the readings of one sensor: with an ``usbip`` feed, the Home
Radio Head's CDC-ACM temperature sensor of that busid, imported over USB/IP
(``temp=21.34`` lines); with a ``local`` feed, the same sensor model ticking here.
``preload`` bytes of history (readings a second apart) make an object 8-78 KB as in
the paper. Users read an object over UDP (wire.py); each object is, here:

    serving   answered at once
    handing   (after a push's take-over, readings held on both hosts, so the same
              state) answered at once (status HANDED) and forwarded too: the new
              host's answer teaches the user the new place
    held      (being taken over, or frozen) requests wait, answered once it serves
              here, or forwarded once another host does
    moved     another host serves it: requests are forwarded there, and that host
              answers the user, who learns the new place from the answer

Two migrations:

- state-only (the paper's PaaS VO migration), op ``vo.push``: the objects go to
  another running host over its sync port in rounds while both serve (core.py),
  then readings are held (the sensors are released: the HRH keeps what they
  measure meanwhile), the last round goes, the target serves (readings still
  held), this host hands them over: it answers reads from its state and forwards
  each, until the target has seen a direct read from every user that read here
  since the readings were held (SEEN: they learnt the new place) and none came
  from a new one for `quiet_ms`, or `linger_ms` passed; then it stops serving
  them, forwards only, and releases the target's readings. No gap: the source
  serves until the target does, and a user's request is answered here, at its
  usual speed, until the user has learnt the new place.
- the platform's (agents): ``export`` is a full snapshot, and ``freeze`` (serving
  stops, stamped) exports only what changed since it, so the copy that holds the
  snapshot needs only that delta; ``import`` takes either.

Own ops: ``vo.push {"to", "sync_port", "port", "app", "threshold", "max_rounds",
"linger_ms", "quiet_ms"}``,
``vo.moved {"to", "port"}`` (after a platform freeze: forward to the new copy),
``vo.image`` (the files this process runs from: the instance's image).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import math
import socket
import sys
import time
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

# Imported here, not when a feed starts: an import then would stall the serving loop
# at the moment a migrated object begins to serve.
from netfate.vnf.runtime import Context, Function
from netfate.vnf.usbip_client import RemoteDevice, UsbipError
from netfate.vnf.vo import core, wire
from netfate.vnf.vo.core import Frames, Puller, Pusher, VoError, VoStore
from netfate.vnf.vo.stream import big_buffers

log = logging.getLogger(__name__)

HELD_MAX = 100_000
"""Requests held while objects are in flight; beyond, the oldest are dropped."""
APP_PACKAGES = ("netfate.vnf.vo", "netfate.vnf.usbip_client", "netfate.proto.usbip")
"""The VO application: the objects' code and their sensor driver (what a target
without it receives; the PaaS runtime itself, this function, is there already)."""
PUSH_TIMEOUT_S = 60.0
LINGER_MS = 200.0
"""At most this long the source hands over (answers and forwards) after the take-over;
readings stay held meanwhile (the HRH keeps them), so it bounds the write hold."""
FEED_STAGGER_S = 0.002
QUIET_MS = 1.0
"""The hand-over ends once every user that read here was seen at the target and no
other user's read came for this long (a read already on its way is forwarded)."""


def now() -> float:
    """The serving clock: CLOCK_MONOTONIC, one clock for every process of a machine."""
    return time.monotonic()


def history(nbytes: int, base: float = 21.0, end: float | None = None) -> bytes:
    """`nbytes` (rounded down to whole readings) of past readings, a second apart,
    from the HRH sensor's model (a slow sine around `base`)."""
    n = nbytes // core.READING.size
    t_end = time.time() if end is None else end
    return b"".join(
        core.reading(t_end - (n - k), round(base + 1.5 * math.sin(k / 10.0), 2)) for k in range(n)
    )


def application() -> bytes:
    """The VO application's image: a zip of APP_PACKAGES' sources."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in APP_PACKAGES:
            mod = sys.modules.get(name) or __import__(name, fromlist=["_"])
            root = Path(str(mod.__file__)).parent
            for f in sorted(root.rglob("*.py")):
                z.write(f, f"{name.replace('.', '/')}/{f.relative_to(root)}")
    return out.getvalue()


def image_files() -> list[str]:
    """The files this process runs from: mapped files (interpreter, libraries) and
    every loaded module's file."""
    files: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                files.add(parts[5])
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and f.startswith("/"):
            files.add(f)
    return sorted(f for f in files if Path(f).is_file())


def _user(client: tuple[str, int], vo: int) -> core.User:
    return (socket.inet_aton(client[0]), client[1], vo)


class VoHost(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        self.host_id = int(cfg.get("host", 0)) & 0xFFFF
        self.port = int(cfg.get("port", 7780))
        self.sync_port = int(cfg.get("sync_port", 7781))
        self.feed: dict[str, Any] = dict(cfg.get("feed") or {})
        self.store = VoStore()
        for o in cfg.get("objects", []):
            self.store.add(
                int(o["vo"]), str(o.get("user", "")), str(o.get("sensor", "1-1")),
                history(int(o.get("preload", 0))),
            )  # fmt: skip
        self.serving: set[int] = set() if ctx.standby else set(self.store.objects)
        self.moved: dict[int, tuple[str, int]] = {}
        self.handing: dict[int, tuple[str, int]] = {}
        """Objects the target serves too (readings held both sides): answer, forward."""
        self.last_read = 0.0
        """When a read of a handing object came from a user not yet seen at the target."""
        self.starting: asyncio.Task[None] | None = None
        """The staggered start of the sensors' feeds (kept: a task needs a holder)."""
        self.pending: set[core.User] = set()
        """(source) Users that read a handing object here, not yet seen at the target."""
        self.learnt: set[core.User] = set()
        self.collect: set[int] = set()
        """(source, from the held readings to the take-over) objects whose readers are
        noted: they too must be seen at the target, even if a stalled path keeps
        their next reads from coming here during the hand-over."""
        self.readers: set[core.User] = set()
        """(source) Users the target saw reading there directly."""
        self.watch: tuple[set[int], asyncio.StreamWriter, set[core.User]] | None = None
        """(target, taken over, source still serving) the objects, the sync connection
        and the users already reported: a user's direct read is reported (SEEN)."""
        self.held: deque[tuple[wire.Request, tuple[str, int]]] = deque(maxlen=HELD_MAX)
        self.export_mark: dict[int, int] | None = None
        self.feeds: dict[int, asyncio.Task[None]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.sync_server: asyncio.Server | None = None
        self.counts = {
            "served": 0, "forwarded": 0, "held": 0, "unknown": 0, "bad": 0, "handed": 0,
        }  # fmt: skip
        self.stamps: dict[str, float | None] = {
            "first_served": None, "last_served": None, "stopped": None, "active": None,
        }  # fmt: skip
        self.pushes: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    # ------------------------------------------------------------ serving

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        fn = self

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                fn.on_datagram(data, (str(addr[0]), int(addr[1])))

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        big_buffers(sock)
        sock.bind(("0.0.0.0", self.port))
        self.transport, _ = await loop.create_datagram_endpoint(Proto, sock=sock)
        self.sync_server = await asyncio.start_server(self._on_push, "0.0.0.0", self.sync_port)
        for vo in self.serving:
            self._feed(vo)

    async def stop(self) -> None:
        if self.starting is not None:
            self.starting.cancel()
        for vo in list(self.feeds):
            await self._unfeed(vo)
        if self.sync_server is not None:
            self.sync_server.close()
        if self.transport is not None:
            self.transport.close()

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            req = wire.decode_request(data)
        except wire.WireError:
            self.counts["bad"] += 1
            return
        client = req.client if req.client is not None else addr
        self._handle(req, client)

    def _handle(self, req: wire.Request, client: tuple[str, int]) -> None:
        vo = req.vo
        if vo in self.handing:
            self._answer(req, client, wire.Status.HANDED)
            if req.kind == wire.Kind.READ:
                user = _user(client, vo)
                if user not in self.learnt:
                    self.pending.add(user)
                    self.last_read = now()
                self._forward(req, client, self.handing[vo])
        elif vo in self.serving:
            self._answer(req, client)
            if vo in self.collect and req.kind == wire.Kind.READ:
                self.readers.add(_user(client, vo))
            if self.watch is not None and req.kind == wire.Kind.READ and vo in self.watch[0]:
                _, writer, told = self.watch
                user = _user(client, vo)
                if user not in told:  # the user reads here: it learnt the place
                    told.add(user)
                    writer.write(core.seen_frame(0, [user]))
        elif vo in self.moved:
            self._forward(req, client)
        elif vo in self.store.objects:
            self.counts["held"] += 1
            self.held.append((req, client))
        else:
            self.counts["unknown"] += 1
            unknown = wire.Answer(wire.Status.UNKNOWN, vo, req.seq, self.host_id, 0, now(), 0)
            self._send(unknown, client)

    def _answer(
        self, req: wire.Request, client: tuple[str, int], status: wire.Status = wire.Status.OK
    ) -> None:
        data = self.store.objects[req.vo].data
        count = len(data) // core.READING.size
        centi = core.READING.unpack_from(data, len(data) - core.READING.size)[1] if count else 0
        at = now()
        if self.stamps["first_served"] is None:
            self.stamps["first_served"] = at
        self.stamps["last_served"] = at
        self.counts["served"] += 1
        self.counts["handed"] += status == wire.Status.HANDED
        ok = wire.Answer(status, req.vo, req.seq, self.host_id, count, at, centi)
        self._send(ok, client)

    def _forward(
        self, req: wire.Request, client: tuple[str, int], to: tuple[str, int] | None = None
    ) -> None:
        if self.transport is None:
            return
        self.counts["forwarded"] += 1
        fwd = wire.Request(wire.Kind.FORWARDED, req.vo, req.seq, client)
        self.transport.sendto(wire.encode_request(fwd), to or self.moved[req.vo])

    def _send(self, a: wire.Answer, client: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(wire.encode_answer(a), client)

    def _release_held(self) -> None:
        """Answer or forward what waited (objects still in flight keep waiting)."""
        waiting, self.held = self.held, deque(maxlen=HELD_MAX)
        for req, client in waiting:
            if req.vo in self.serving or req.vo in self.moved:
                self._handle(req, client)
            else:
                self.held.append((req, client))

    def _stop_serving(self, vos: set[int], to: tuple[str, int] | None) -> float:
        at = now()
        self.serving -= vos
        for vo in vos:
            self.handing.pop(vo, None)
        if to is not None:
            self.moved.update({vo: to for vo in vos})
        self.stamps["stopped"] = at
        return at

    def _start_serving(self, vos: set[int], feed: bool = True) -> float:
        """`feed`: take readings at once (not while a source still serves them)."""
        at = now()
        for vo in vos:
            self.moved.pop(vo, None)
        self.serving |= vos
        self.stamps["active"] = at
        self._release_held()
        if feed:
            self._start_feeds(vos)
        return at

    def _start_feeds(self, vos: set[int]) -> None:
        """One sensor import at a time, FEED_STAGGER_S apart: ten USB/IP imports begun
        at once hold this loop ~10 ms (seen in the netns test as a user's wait right
        after the release), longer than the readings gain by starting together."""

        if self.feed.get("kind") not in ("usbip", "local"):
            return  # no sensors to import

        async def staggered() -> None:
            for vo in sorted(vos):
                if vo in self.serving:
                    self._feed(vo)
                await asyncio.sleep(FEED_STAGGER_S)

        self.starting = asyncio.get_running_loop().create_task(staggered())

    # ------------------------------------------------------------ sensors

    def _feed(self, vo: int) -> None:
        kind = self.feed.get("kind")
        if vo in self.feeds or kind not in ("usbip", "local"):
            return
        obj = self.store.objects[vo]
        coro = self._usbip(vo, obj.sensor) if kind == "usbip" else self._local(vo)
        self.feeds[vo] = asyncio.get_running_loop().create_task(coro)

    async def _unfeed(self, vo: int) -> None:
        task = self.feeds.pop(vo, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _unfeed_all(self, vos: set[int]) -> None:
        await asyncio.gather(*(self._unfeed(vo) for vo in vos))

    async def _local(self, vo: int) -> None:
        period = float(self.feed.get("period", 1.0))
        k = len(self.store.objects[vo].data) // core.READING.size
        while True:
            await asyncio.sleep(period)
            k += 1
            self.store.append(vo, core.reading(time.time(), 21.0 + 1.5 * math.sin(k / 10.0)))

    async def _usbip(self, vo: int, busid: str) -> None:
        server, port = str(self.feed["server"]), int(self.feed.get("port", 3240))
        while True:
            try:
                # The previous holder may still be releasing it (DEV_BUSY): retried.
                dev = await RemoteDevice.attach(server, busid, port)
            except (UsbipError, OSError) as e:
                log.warning("object %s: sensor %s not imported (%s); again", vo, busid, e)
                await asyncio.sleep(0.05)
                continue
            try:
                await dev.set_configuration(1)
                pending = b""
                while True:
                    pending += await dev.bulk_in(1, 512)
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self._reading(vo, line)
            except (UsbipError, OSError) as e:
                log.warning("object %s: sensor %s lost (%s); importing again", vo, busid, e)
            finally:
                with contextlib.suppress(Exception):
                    await dev.close()

    def _reading(self, vo: int, line: bytes) -> None:
        text = line.strip()
        if text.startswith(b"temp="):
            try:
                value = float(text[5:])
            except ValueError:
                return
            if math.isfinite(value):
                self.store.append(vo, core.reading(time.time(), value))

    # ------------------------------------------------------------ state-only push

    async def push(
        self, to: str, sync_port: int, port: int, *, app: bool, threshold: int, max_rounds: int,
        linger_ms: float = LINGER_MS, quiet_ms: float = QUIET_MS,
    ) -> dict[str, Any]:  # fmt: skip
        vos = set(self.store.objects) - set(self.moved)
        pusher = Pusher(
            self.store, threshold=threshold, max_rounds=max_rounds,
            app=application() if app else None,
        )  # fmt: skip
        report: dict[str, Any] = {"started": now(), "objects": len(vos)}
        report["object_bytes"] = self.store.nbytes()
        reader, writer = await asyncio.wait_for(asyncio.open_connection(to, sync_port), 10)
        rounds: list[dict[str, Any]] = []
        try:
            writer.write(pusher.start())
            frames = Frames()
            while pusher.phase != core.SourcePhase.HANDED:
                data = await asyncio.wait_for(reader.read(1 << 16), PUSH_TIMEOUT_S)
                if not data:
                    raise VoError("the target closed the sync connection")
                for kind, seq, body in frames.feed(data):
                    out, events = pusher.on_frame(kind, seq, body, now())
                    for ev in events:
                        if isinstance(ev, core.RoundApplied):
                            rounds.append({"seq": ev.seq, "bytes": ev.nbytes, "acked": ev.at})
                        elif isinstance(ev, core.AppDelivered):
                            report["app_bytes"], report["app_acked"] = ev.nbytes, ev.at
                        elif isinstance(ev, core.TookOver):
                            report["active"], report["heard_active"] = ev.active_at, ev.at
                            # Both serve the same held state: answer here, and
                            # forward so the target's answer teaches the place.
                            self.handing.update({vo: (to, port) for vo in vos})
                            self.pending, self.learnt = set(self.readers), set()
                            self.collect, self.readers = set(), set()
                            self.last_read = ev.at
                        elif isinstance(ev, core.UsersLearnt):  # with ACTIVE, in one read
                            self.learnt.update(ev.users)
                    if out:
                        writer.write(out)
                    if pusher.ready and pusher.phase == core.SourcePhase.SYNCING:
                        # Readings held from here: the sensors keep theirs meanwhile.
                        await self._unfeed_all(vos)
                        report["readings_held"] = now()
                        self.collect, self.readers = set(vos), set()
                        final = pusher.finalize()
                        report["final_bytes"] = len(final)
                        # Stamped before the write: the target may serve before it returns.
                        report["final_sent"] = now()
                        writer.write(final)
                await writer.drain()
            await self._hand_over(reader, frames, pusher, report, linger_ms / 1e3, quiet_ms / 1e3)
            report["stopped"] = self._stop_serving(vos, (to, port))
            self._release_held()
            writer.write(pusher.release())
            await writer.drain()
            report["released"] = now()
        except BaseException:
            self.collect = set()
            if pusher.phase == core.SourcePhase.HANDED:
                # The target serves already: stop here (forwarding), never both.
                report.setdefault("stopped", self._stop_serving(vos, (to, port)))
                raise
            pusher.abort()
            for vo in vos:
                self.handing.pop(vo, None)
                if vo in self.serving:
                    self._feed(vo)  # serve on, readings again
            raise
        finally:
            writer.close()
        report["rounds"] = rounds
        report["sent_bytes"] = pusher.sent_bytes
        report["done"] = now()
        self.pushes.append(report)
        return report

    async def _hand_over(
        self, reader: asyncio.StreamReader, frames: Frames, pusher: Pusher,
        report: dict[str, Any], linger: float, quiet: float,
    ) -> None:  # fmt: skip
        """Answer and forward until every user that read here was seen at the target
        and no new one read for `quiet`, or `linger` passed since the take-over."""

        async def learn() -> None:
            while data := await reader.read(1 << 16):
                for kind, seq, body in frames.feed(data):
                    for ev in pusher.on_frame(kind, seq, body, now())[1]:
                        if isinstance(ev, core.UsersLearnt):
                            self.learnt.update(ev.users)
                            self.pending.difference_update(ev.users)

        task = asyncio.get_running_loop().create_task(learn())
        start = now()
        try:
            while True:
                t = now()
                if t - start >= linger:
                    report["hand_over_end"] = "linger"
                    break
                if not self.pending and t - self.last_read >= quiet:
                    report["hand_over_end"] = "users learnt"
                    break
                await asyncio.sleep(0.0002)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, VoError, ConnectionError):
                await task
        report["handed_for"] = now() - start
        report["users"] = {"learnt": len(self.learnt), "not_learnt": len(self.pending)}

    async def _on_push(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        puller = Puller(self.store)
        frames = Frames()
        t0 = now()
        new: set[int] = set()
        released: float | None = None
        try:
            while puller.phase != core.TargetPhase.RELEASED:
                data = await reader.read(1 << 16)
                if not data:
                    break
                for kind, seq, body in frames.feed(data):
                    out, events = puller.on_frame(kind, seq, body, now())
                    for ev in events:
                        if isinstance(ev, core.ObjectsActivated):
                            new = set(ev.vos) - self.serving
                            # Served now; readings only once the source stopped.
                            at = self._start_serving(new, feed=False)
                            self.watch = (new, writer, set())
                            # The stamp sent back is when serving began here.
                            out = core.active_frame(seq, at)
                        elif isinstance(ev, core.ReadingsReleased):
                            released = ev.at
                    if out:
                        writer.write(out)
                await writer.drain()
        except (VoError, ConnectionError) as e:
            log.error("push refused: %s", e)
            puller.abort()
        finally:
            self.watch = None
            writer.close()
            if puller.phase in (core.TargetPhase.ACTIVE, core.TargetPhase.RELEASED):
                # Released, or the source is gone after the take-over: one place now.
                self._start_feeds(new)
        self.received.append(
            {"started": t0, "phase": str(puller.phase), "bytes": puller.received,
             "app_bytes": len(puller.app or b""), "released": released}
        )  # fmt: skip

    # ------------------------------------------------------------ the platform's ops

    def freeze(self) -> None:
        super().freeze()
        self._stop_serving(set(self.serving), None)
        for vo in list(self.feeds):  # released now; the sensors keep their readings
            self.feeds.pop(vo).cancel()

    def activate(self) -> None:
        super().activate()
        self._start_serving(set(self.store.objects) - set(self.moved))

    def export_state(self) -> dict[str, Any]:
        """A full snapshot; frozen, only what changed since the last snapshot."""
        delta = not self.active and self.export_mark is not None
        pieces = self.store.since(self.export_mark if delta else None)
        if not delta:
            self.export_mark = self.store.mark()
        return {
            "kind": "delta" if delta else "full",
            "pieces": [
                {"vo": p.vo, "user": p.user, "sensor": p.sensor, "base": p.base,
                 "data": base64.b64encode(p.data).decode()}
                for p in pieces
            ],
        }  # fmt: skip

    def import_state(self, state: dict[str, Any]) -> None:
        try:
            pieces = [
                core.Piece(int(p["vo"]), str(p["user"]), str(p["sensor"]), int(p["base"]),
                           base64.b64decode(str(p["data"]), validate=True))
                for p in state.get("pieces", [])
            ]  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise VoError(f"bad VO state: {e}") from None
        if state.get("kind") == "full":
            fresh = VoStore()
            fresh.apply(pieces)
            self.store = fresh
        elif state.get("kind") == "delta":
            self.store.apply(pieces)
        else:
            raise VoError("VO state kind must be 'full' or 'delta'")

    async def control(self, req: dict[str, Any]) -> dict[str, Any] | None:
        op = req.get("op")
        if op == "vo.push":
            report = await self.push(
                str(req["to"]), int(req.get("sync_port", 7781)), int(req.get("port", 7780)),
                app=bool(req.get("app", False)), threshold=int(req.get("threshold", 4096)),
                max_rounds=int(req.get("max_rounds", 5)),
                linger_ms=float(req.get("linger_ms", LINGER_MS)),
                quiet_ms=float(req.get("quiet_ms", QUIET_MS)),
            )  # fmt: skip
            return {"ok": True, "report": report}
        if op == "vo.moved":
            to = (str(req["to"]), int(req.get("port", 7780)))
            self.moved.update({vo: to for vo in self.store.objects})
            self._release_held()
            return {"ok": True}
        if op == "vo.image":
            return {"ok": True, "files": image_files()}
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "objects": len(self.store.objects),
            "object_bytes": self.store.nbytes(),
            "serving": sorted(self.serving),
            "moved": sorted(self.moved),
            "handing": sorted(self.handing),
            "held_now": len(self.held),
            **self.counts,
            "stamps": dict(self.stamps),
            "pushes": self.pushes[-3:],
            "received": self.received[-3:],
        }
