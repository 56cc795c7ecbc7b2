"""The acquirer: the root of a delivery tree, at the provider's access PE.

It owns the ports the front-end assigns to providers' flows, and every port of
its block: whatever arrives on them is either a stream it takes or something it
refuses and explains (:class:`~.events.StreamRefused`, counted by reason).

A *flow* is one provider stream: a port, a protocol, the event it is armed for,
its next hops. Protocols:

- ``rtp``: RTP/MPEG-TS over UDP (RFC 2250) as in the paper; RTCP on port + 1.
  Datagrams go straight through the relay core to the next hops.
- ``srt`` and ``rtmp``: what providers' tools (OBS, ffmpeg) send today. ffmpeg
  terminates them: it has the reference implementations (libsrt; RTMP with its
  FLV handshakes and chunking) where Python has none maintained, and with
  ``-c copy`` it only remuxes (no transcoding: little CPU, no quality loss). It
  runs as a listener on 127.0.0.1 inside the instance and sends RTP/MPEG-TS to
  an internal port of the acquirer, so every protocol ends in the one data path
  (relay core, analyzer, next hops) and the tree below only ever carries
  RTP/MPEG-TS. The public port stays the acquirer's own: a small proxy (UDP
  datagrams for SRT, a TCP splice for RTMP) passes an armed flow's provider to
  ffmpeg and refuses everyone else with a reason, which ffmpeg alone could not
  (it takes any caller and any stream key).

A flow is *armed* when it has an event that is ``scheduled`` or ``started`` and
``now`` is inside its optional window (``armed_from``..``armed_until``, Unix
seconds) and the sender is in its optional ``sources``. Otherwise what arrives is
refused with one of: ``wrong_port`` (no flow on that port), ``no_event``,
``event_ended``, ``outside_window``, ``wrong_source``, ``wrong_protocol`` (UDP to
an RTMP port, TCP to an RTP/SRT port), ``busy`` (a second SRT/RTMP provider while
one is connected), ``wrong_key`` (an RTMP publisher naming another stream key than
the flow's ``stream_secret``: the proxy reads the publish command, netfate.proto.rtmp),
``not_rtmp`` (bytes that are not an RTMP publisher's), ``wrong_passphrase`` and
``no_passphrase`` (an SRT caller with another passphrase than the flow's, or none:
libsrt in ffmpeg rejects it and says so on ffmpeg's stderr, which the acquirer reads).

The acquirer recognises each flow's stream with the MPEG-TS analyzer and emits
``StreamStarted``, ``StreamRecognised`` (container, codecs, picture, audio),
``StreamMeasured`` (bitrate by the programme clock) and ``StreamStopped``.

Config::

    {"ports": {"first": 5000, "last": 5031},        # the block (optional)
     "flows": [{"id": "f1", "event": "ev42", "state": "started",
                "protocol": "rtp", "port": 5000,
                "next_hops": [{"host": "10.0.9.2", "port": 6000}],
                "sources": ["10.1.0.7"],              # optional
                "armed_from": 1767000000, "armed_until": 1767007200,   # optional
                "passphrase": "...",                  # SRT only, optional (10-79 chars)
                "stream_secret": "...",               # RTMP only, optional: the stream key
                "latency_ms": 120}],                  # SRT only
     "bind": "0.0.0.0", "source_timeout": 10, "refusal_quiet_s": 10}

``configure`` applies everything in place except ``bind`` and ``source_timeout``:
next hops swap between two datagrams; arming changes take effect on the next
datagram; a flow whose port or protocol changes is rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import shutil
import socket
import tempfile
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.host.private import write_private
from netfate.proto.mpegts import BitrateMeasured, ProgramRecognised
from netfate.proto.rtmp import PublishReader, RtmpError
from netfate.proto.rtp import ActiveSourceChanged, SourceLeft, SourceTimedOut
from netfate.vnf.runtime import Context

from . import config as c
from .base import StreamingFunction, listen_tcp
from .events import (
    StreamMeasured,
    StreamRecognised,
    StreamRefused,
    StreamStarted,
    StreamStopped,
)
from .ffmpeg import FfmpegChild
from .net import Fanout, UdpPort
from .path import RelaySettings, RtpPath, describe, internal_input

MAX_FLOWS = 32
MAX_BLOCK = 256
MAX_EPISODES = 1024
PROTOCOLS = ("rtp", "srt", "rtmp")
ARMED_STATES = ("scheduled", "started")
STATES = (*ARMED_STATES, "ended")
PROXY_IDLE_S = 5.0
"""An SRT provider silent this long no longer holds the flow (another may connect)."""
CONNECT_RETRY_S = 5.0
"""How long an RTMP connection waits for ffmpeg's listener (it restarts between sessions)."""
SPLICE_CHUNK = 65536
MIN_KEY, MAX_KEY = 8, 128
"""An RTMP stream key's length."""
SRT_REJECTED = re.compile(r"rsp\(REJECT\): (\d+) - (.*)$")
"""libsrt's line on ffmpeg's stderr when the listener rejects a caller."""
SRT_SECRET_REJECTIONS = {1010: "wrong_passphrase", 1011: "no_passphrase"}
"""libsrt's SRT_REJ_BADSECRET and SRT_REJ_UNSECURE: another passphrase, or none."""


@dataclass(frozen=True)
class FlowConfig:
    id: str
    protocol: str
    port: int
    event: str | None = None
    state: str = "scheduled"
    next_hops: tuple[c.Hop, ...] = ()
    sources: frozenset[str] | None = None
    armed_from: float | None = None
    armed_until: float | None = None
    passphrase: str | None = None
    stream_secret: str | None = None
    latency_ms: int = 120

    @property
    def udp_ports(self) -> tuple[int, ...]:
        if self.protocol == "rtp":
            return (self.port, self.port + 1)
        return (self.port,) if self.protocol == "srt" else ()

    @property
    def transport(self) -> str:
        return "tcp" if self.protocol == "rtmp" else "udp"

    @classmethod
    def parse(cls, value: Any, where: str) -> FlowConfig:
        d = c.obj(value, where, (
            "id", "protocol", "port", "event", "state", "next_hops", "sources",
            "armed_from", "armed_until", "passphrase", "stream_secret", "latency_ms",
        ))  # fmt: skip
        protocol = c.choice(d, "protocol", where, PROTOCOLS)
        passphrase = None
        if d.get("passphrase") is not None:
            if protocol != "srt":
                raise c.ConfigError(f"{where}.passphrase: only SRT flows take one")
            passphrase = c.text(d, "passphrase", where, max_len=79)
            if len(passphrase) < 10:
                raise c.ConfigError(f"{where}.passphrase: SRT needs 10 to 79 characters")
        key = None
        if d.get("stream_secret") is not None:
            if protocol != "rtmp":
                raise c.ConfigError(f"{where}.stream_secret: only RTMP flows take one")
            key = c.text(d, "stream_secret", where, max_len=MAX_KEY)
            if len(key) < MIN_KEY:
                raise c.ConfigError(f"{where}.stream_secret: at least {MIN_KEY} characters")
        flow = cls(
            id=c.name(d, "id", where),
            protocol=protocol,
            port=c.integer(d, "port", where, lo=1, hi=65534 if protocol == "rtp" else 65535),
            event=c.name(d, "event", where) if d.get("event") is not None else None,
            state=c.choice(d, "state", where, STATES, default="scheduled"),
            next_hops=c.hops(d, "next_hops", where),
            sources=c.addresses(d, "sources", where),
            armed_from=c.optional_number(d, "armed_from", where, lo=0, hi=1e11),
            armed_until=c.optional_number(d, "armed_until", where, lo=0, hi=1e11),
            passphrase=passphrase,
            stream_secret=key,
            latency_ms=c.integer(d, "latency_ms", where, lo=20, hi=8000, default=120),
        )
        if (
            flow.armed_from is not None
            and flow.armed_until is not None
            and flow.armed_until <= flow.armed_from
        ):
            raise c.ConfigError(f"{where}: armed_until is not after armed_from")
        return flow


@dataclass(frozen=True)
class AcquirerConfig:
    flows: tuple[FlowConfig, ...]
    block: tuple[int, int] | None = None
    bind: str = "0.0.0.0"
    relay: RelaySettings = field(default_factory=RelaySettings)
    refusal_quiet_s: float = 10.0

    @property
    def block_ports(self) -> range:
        return range(self.block[0], self.block[1] + 1) if self.block else range(0)

    @property
    def udp_ports(self) -> set[int]:
        return set(self.block_ports) | {p for f in self.flows for p in f.udp_ports}

    @property
    def tcp_ports(self) -> set[int]:
        return set(self.block_ports) | {f.port for f in self.flows if f.protocol == "rtmp"}

    @classmethod
    def parse(cls, value: Any) -> AcquirerConfig:
        where = "config"
        d = c.obj(value, where, ("flows", "ports", "bind", "source_timeout", "refusal_quiet_s"))
        block = None
        if d.get("ports") is not None:
            b = c.obj(d["ports"], "config.ports", ("first", "last"))
            first, last = c.port(b, "first", "config.ports"), c.port(b, "last", "config.ports")
            if not 0 <= last - first < MAX_BLOCK:
                raise c.ConfigError(f"config.ports: first..last must hold 1..{MAX_BLOCK} ports")
            block = (first, last)
        flows = [
            FlowConfig.parse(f, f"config.flows[{i}]")
            for i, f in enumerate(c.listed(d, "flows", where, max_items=MAX_FLOWS))
        ]
        c.unique(flows, lambda f: f.id, "config.flows", "flow")
        c.unique([p for f in flows for p in f.udp_ports], lambda p: p, "config.flows", "UDP port")
        c.unique(
            [f.port for f in flows if f.protocol == "rtmp"], lambda p: p, "config.flows", "TCP port"
        )
        if block is not None:
            for f in flows:
                if not all(block[0] <= p <= block[1] for p in (*f.udp_ports, f.port)):
                    raise c.ConfigError(f"config.flows: flow {f.id}'s ports are outside the block")
        return cls(
            flows=tuple(flows),
            block=block,
            bind=c.address(d.get("bind", "0.0.0.0"), "config.bind"),
            relay=RelaySettings(
                source_timeout=c.number(d, "source_timeout", where, lo=1, hi=3600, default=10.0)
            ),
            refusal_quiet_s=c.number(d, "refusal_quiet_s", where, lo=0, hi=3600, default=10.0),
        )


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Flow:
    """A flow's running parts: its data path and, for SRT/RTMP, ffmpeg and the proxy."""

    def __init__(self, cfg: FlowConfig, fn: Acquirer) -> None:
        self.cfg = cfg
        self.fn = fn
        self.path = RtpPath(Fanout(fn.sender, cfg.next_hops), fn.cfg.relay, analyze=True)
        self.streaming = False
        self.ssrc: int | None = None
        self.provider: str | None = None
        """Who is streaming: the RTP sender, or the SRT/RTMP peer the proxy passed on."""
        self.recognised: dict[str, Any] | None = None
        self.announced: tuple[dict[str, Any], ...] | None = None
        """The streams last told to the back-end (a peer's, after a migration)."""
        self.measured = False
        self.child: FfmpegChild | None = None
        self.private: Path | None = None
        """The directory of ffmpeg's input script when it holds a passphrase."""
        self.internal: list[UdpPort] = []
        self.ff_port = 0
        # SRT proxy: the provider's address and the socket towards ffmpeg.
        self.srt_peer: tuple[str, int] | None = None
        self.srt_up: socket.socket | None = None
        self.srt_seen = 0.0
        self.rtmp_conn: asyncio.Task[None] | None = None
        self.connections = 0

    # ----- ffmpeg ingest -----------------------------------------------------------

    def open_ingest(self) -> None:
        if self.cfg.protocol == "rtp":
            return
        self.internal, port = internal_input(self.path)
        out = ["-c", "copy", "-map", "0", "-f", "rtp_mpegts"]
        out.append(f"rtp://127.0.0.1:{port}?pkt_size=1328")
        probe = ["-probesize", "500000", "-analyzeduration", "1000000"]
        secrets: list[str] = []
        if self.cfg.protocol == "srt":
            self.ff_port = _free_udp_port()
            q = f"mode=listener&latency={self.cfg.latency_ms * 1000}"
            url = f"srt://127.0.0.1:{self.ff_port}?{q}"
            if self.cfg.passphrase:  # ffmpeg URL-decodes it
                quoted = urllib.parse.quote(self.cfg.passphrase, safe="")
                secrets = [self.cfg.passphrase, quoted]
                src = self._private_input(f"{url}&passphrase={quoted}")
            else:
                src = ["-f", "mpegts", "-i", url]
        else:
            self.ff_port = _free_tcp_port()
            url = f"rtmp://127.0.0.1:{self.ff_port}/live/stream"
            src = ["-listen", "1", "-f", "flv", "-i", url]
        if self.cfg.stream_secret:  # ffmpeg warns of a stream name it did not expect
            secrets = [self.cfg.stream_secret, urllib.parse.quote(self.cfg.stream_secret)]
        self.child = FfmpegChild(
            f"ingest:{self.cfg.id}",
            [*probe, *src, *out],
            on_exit=self.fn.helper_exited,
            secrets=secrets,
            on_line=self._ingest_said if self.cfg.protocol == "srt" else None,
        )
        self.child.start()

    def _private_input(self, url: str) -> list[str]:
        """ffmpeg's input for an SRT URL that carries the passphrase: a concat script of
        that one URL in a file only its owner reads (0600, in a 0700 directory), never
        ffmpeg's argument list, which every user reads in /proc/PID/cmdline. The script
        probes the stream as `probe` would; the quoted passphrase holds no quote."""
        if self.private is None:
            self.private = Path(tempfile.mkdtemp(prefix=f"nf-acq-{self.cfg.id}-"))
        script = (f"ffconcat version 1.0\nfile '{url}'\n"
                  "option probesize 500000\noption analyzeduration 1000000\n")  # fmt: skip
        path = write_private(self.private / "ingest.ffconcat", script)
        return ["-f", "concat", "-safe", "0", "-protocol_whitelist", "file,srt,udp",
                "-i", str(path)]  # fmt: skip

    async def close(self) -> None:
        for p in self.internal:
            p.close()
        self.internal = []
        if self.private is not None:
            shutil.rmtree(self.private, ignore_errors=True)
            self.private = None
        self._srt_forget()
        if self.rtmp_conn is not None:
            self.rtmp_conn.cancel()
        if self.child is not None:
            await self.child.stop(grace=2.0)
            self.child = None

    def _ingest_said(self, line: str) -> None:
        """libsrt rejected a caller (its passphrase): refused, and the flow free again."""
        m = SRT_REJECTED.search(line)
        if m is None:
            return
        code = int(m.group(1))
        reason = SRT_SECRET_REJECTIONS.get(code, "srt_rejected")
        source = self.srt_peer[0] if self.srt_peer is not None else "?"
        port = self.cfg.port
        self._srt_forget()
        self.fn.refuse(reason, self, port, "udp", source, 0, time.monotonic(),
                       said=m.group(2)[:120])  # fmt: skip

    # ----- SRT proxy -----------------------------------------------------------------

    def srt_from_provider(self, data: bytes, addr: tuple[str, int], now: float) -> str | None:
        """A datagram from an SRT provider: passed to ffmpeg, or a refusal reason."""
        if self.srt_peer is not None and self.srt_peer != addr:
            if now - self.srt_seen < PROXY_IDLE_S:
                return "busy"
            self._srt_forget()
        if self.srt_up is None:
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.setblocking(False)
            up.connect(("127.0.0.1", self.ff_port))
            self.srt_up, self.srt_peer = up, addr
            self.connections += 1
            self.provider = addr[0]
            asyncio.get_running_loop().add_reader(up.fileno(), self._srt_back)
        self.srt_seen = now
        with contextlib.suppress(OSError):  # ffmpeg restarting: SRT retransmits
            self.srt_up.send(data)
        return None

    def _srt_back(self) -> None:
        up, peer, port = self.srt_up, self.srt_peer, self.fn.udp.get(self.cfg.port)
        if up is None or peer is None:
            return
        for _ in range(64):
            try:
                data = up.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ffmpeg not listening (ICMP): the caller retries
            if port is not None and port.sock is not None:
                with contextlib.suppress(OSError):
                    port.sock.sendto(data, peer)

    def _srt_forget(self) -> None:
        if self.srt_up is not None:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(self.srt_up.fileno())
            self.srt_up.close()
        self.srt_up = self.srt_peer = None

    # ----- RTMP proxy ----------------------------------------------------------------

    async def rtmp_splice(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: str
    ) -> None:
        self.connections += 1
        deadline = time.monotonic() + CONNECT_RETRY_S
        while True:
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.ff_port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    writer.close()
                    return
                await asyncio.sleep(0.05)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(SPLICE_CHUNK):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError, RuntimeError):
                dst.close()

        async def keyed(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            """The publisher's bytes, read as far as its publish command: a wrong stream
            key never reaches ffmpeg (which would take any)."""
            key = self.cfg.stream_secret
            if key is not None:
                publish = PublishReader()
                with contextlib.suppress(ConnectionError, OSError):
                    while data := await src.read(SPLICE_CHUNK):
                        try:
                            got = publish.feed(data)
                        except RtmpError as e:
                            self._rtmp_refused("not_rtmp", source, str(e)[:120], dst, writer)
                            return
                        if got is not None and not hmac.compare_digest(
                            got.name.encode(), key.encode()
                        ):
                            self._rtmp_refused("wrong_key", source, None, dst, writer)
                            return
                        dst.write(data)
                        await dst.drain()
                        if got is not None:
                            break
            await pump(src, dst)

        try:
            await asyncio.gather(keyed(reader, up_w), pump(up_r, writer))
        finally:
            for w in (writer, up_w):
                with contextlib.suppress(OSError, RuntimeError):
                    w.close()

    def _rtmp_refused(self, reason: str, source: str, said: str | None,
                      *conns: asyncio.StreamWriter) -> None:  # fmt: skip
        if self.child is not None:  # ffmpeg's listener ends with the cut session
            self.child.expect_exit()
        for w in conns:
            with contextlib.suppress(OSError, RuntimeError):
                w.close()
        self.fn.refuse(reason, self, self.cfg.port, "tcp", source, 0, time.monotonic(),
                       said=said)  # fmt: skip

    # ----- figures -------------------------------------------------------------------

    def stats(self, now: float, armed: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": self.cfg.event,
            "state": self.cfg.state,
            "protocol": self.cfg.protocol,
            "port": self.cfg.port,
            "armed": armed is None,
            "not_armed_because": armed,
            "streaming": self.streaming,
            "provider": self.provider,
            "recognised": self.recognised,
            "bitrate_bps": {k: round(v) for k, v in self.path.bitrate.items()},
            "path": self.path.stats(now),
        }
        if self.child is not None:
            out["ingest"] = {**self.child.stats(), "connections": self.connections}
        return out


class Acquirer(StreamingFunction):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = AcquirerConfig.parse(ctx.config)
        self.flows: dict[str, Flow] = {}
        self.udp: dict[int, UdpPort] = {}
        self.tcp: dict[int, socket.socket] = {}
        self._conns: set[asyncio.Task[None]] = set()
        self.refused: dict[str, int] = {}
        """Refused datagrams and connections by reason."""
        self.refused_octets = 0
        self._episodes: OrderedDict[tuple[str, int, str, str], float] = OrderedDict()
        self._by_udp: dict[int, Flow] = {}
        self._by_tcp: dict[int, Flow] = {}
        self._imported: dict[str, Any] = {}

    # ----- life ----------------------------------------------------------------------

    async def start(self) -> None:
        self._open_ports(self.cfg.udp_ports, self.cfg.tcp_ports)
        for fc in self.cfg.flows:
            self._add_flow(fc)
        self._index()
        await super().start()

    async def stop(self) -> None:
        for flow in self.flows.values():
            await flow.close()
        for p in self.udp.values():
            p.close()
        for sock in self.tcp.values():
            _close_listener(sock)
        for task in list(self._conns):
            task.cancel()
        await super().stop()

    def _open_ports(self, udp: set[int], tcp: set[int]) -> None:
        """Open the missing ports; on any failure close what this call opened and raise."""
        new_udp: dict[int, UdpPort] = {}
        new_tcp: dict[int, socket.socket] = {}
        loop = asyncio.get_running_loop()
        try:
            for port in sorted(udp - set(self.udp)):
                p = UdpPort(self.cfg.bind, port, self._udp_handler(port))
                p.open()
                new_udp[port] = p
            for port in sorted(tcp - set(self.tcp)):
                new_tcp[port] = listen_tcp(self.cfg.bind, port)
                loop.add_reader(new_tcp[port].fileno(), self._accept, port, new_tcp[port])
        except OSError:
            for p in new_udp.values():
                p.close()
            for sock in new_tcp.values():
                _close_listener(sock)
            raise
        self.udp.update(new_udp)
        self.tcp.update(new_tcp)

    def _accept(self, port: int, listener: socket.socket) -> None:
        for _ in range(16):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            task = asyncio.get_running_loop().create_task(self._connection(port, conn))
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    async def _connection(self, port: int, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        try:
            await self.on_tcp(port, reader, writer)
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def _add_flow(self, fc: FlowConfig) -> Flow:
        flow = Flow(fc, self)
        imported = self._imported.get(fc.id)
        if isinstance(imported, Mapping):
            flow.announced = _streams(imported.get("announced"))
            if isinstance(imported.get("recognised"), dict):
                flow.recognised = imported["recognised"]
        if fc.event is not None and fc.state in ARMED_STATES:
            flow.open_ingest()
        self.flows[fc.id] = flow
        return flow

    def _index(self) -> None:
        self._by_udp = {p: f for f in self.flows.values() for p in f.cfg.udp_ports}
        self._by_udp.update({f.cfg.port: f for f in self.flows.values()})
        self._by_tcp = {f.cfg.port: f for f in self.flows.values()}

    def _udp_handler(self, port: int) -> Any:
        def handle(data: bytes, addr: tuple[str, int], now: float) -> None:
            self.on_udp(port, data, addr, now)

        return handle

    # ----- arming and refusals ---------------------------------------------------------

    def refusal(self, flow: Flow | None, transport: str, source: str) -> str | None:
        """Why what arrived is refused, or None if `flow` takes it."""
        if flow is None:
            return "wrong_port"
        if transport != flow.cfg.transport:
            return "wrong_protocol"
        reason = arming(flow.cfg, time.time())
        if reason is None and flow.cfg.sources is not None and source not in flow.cfg.sources:
            return "wrong_source"
        return reason

    def detail(
        self, reason: str, flow: Flow | None, port: int, source: str, said: str | None = None
    ) -> str:
        if flow is None:
            mine = [f.cfg for f in self.flows.values() if f.cfg.sources and source in f.cfg.sources]
            hint = "".join(
                f"; your event {f.event} takes {f.protocol.upper()} on port {f.port}"
                for f in mine
                if f.event
            )
            return f"port {port} is not assigned to any stream{hint}"
        f = flow.cfg
        if reason == "wrong_protocol":
            return f"port {port} takes {f.protocol.upper()} over {f.transport.upper()}"
        if reason == "no_event":
            return f"no event is scheduled on port {port}"
        if reason == "event_ended":
            return f"event {f.event} has ended"
        if reason == "outside_window":
            window = f"from {_iso(f.armed_from)} to {_iso(f.armed_until)}"
            return f"event {f.event} takes its stream {window}"
        if reason == "wrong_source":
            return f"{source} may not stream to event {f.event}"
        if reason == "busy":
            return f"event {f.event} already has a provider connected ({flow.provider})"
        if reason == "wrong_key":  # never the key sent, nor the right one
            return f"the RTMP stream key is not event {f.event}'s: use the URL your studio shows"
        if reason == "not_rtmp":
            return f"port {port} takes RTMP and this was not an RTMP publisher ({said})"
        if reason in ("wrong_passphrase", "no_passphrase"):
            which = "not" if reason == "wrong_passphrase" else "missing: it is"
            return (f"the SRT passphrase is {which} event {f.event}'s: use the URL your "
                    f"studio shows ({said})")  # fmt: skip
        if reason == "srt_rejected":
            return f"the SRT connection to event {f.event} was rejected ({said})"
        return reason

    def refuse(self, reason: str, flow: Flow | None, port: int, transport: str, source: str,
               octets: int, now: float, said: str | None = None) -> None:  # fmt: skip
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.refused_octets += octets
        key = (source, port, transport, reason)
        last = self._episodes.pop(key, None)
        self._episodes[key] = now
        while len(self._episodes) > MAX_EPISODES:
            self._episodes.popitem(last=False)
        if last is None or now - last >= self.cfg.refusal_quiet_s:
            self.emit(StreamRefused(
                port=port, transport=transport, source=source, reason=reason,
                detail=self.detail(reason, flow, port, source, said),
                flow=flow.cfg.id if flow else None, event=flow.cfg.event if flow else None,
                at=time.time(),
            ))  # fmt: skip

    # ----- data path -----------------------------------------------------------------

    def on_udp(self, port: int, data: bytes, addr: tuple[str, int], now: float) -> None:
        if not self.active:
            self.inactive_dropped += 1
            return
        flow = self._by_udp.get(port)
        reason = self.refusal(flow, "udp", addr[0])
        if reason is None and flow is not None:
            if flow.cfg.protocol == "rtp":
                if port == flow.cfg.port:
                    flow.path.on_rtp(data, addr, now)
                else:
                    flow.path.on_rtcp(data, addr, now)
                return
            reason = flow.srt_from_provider(data, addr, now)
            if reason is None:
                return
        self.refuse(reason or "wrong_port", flow, port, "udp", addr[0], len(data), now)

    async def on_tcp(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        source = str(peer[0])
        flow = self._by_tcp.get(port)
        reason = "inactive" if not self.active else self.refusal(flow, "tcp", source)
        if reason is None and flow is not None:
            if flow.rtmp_conn is not None and not flow.rtmp_conn.done():
                reason = "busy"
            else:
                flow.provider = source
                task = asyncio.current_task()
                flow.rtmp_conn = task
                await flow.rtmp_splice(reader, writer, source)
                return
        self.refuse(reason or "wrong_port", flow, port, "tcp", source, 0, time.monotonic())
        writer.close()

    # ----- housekeeping ----------------------------------------------------------------

    def tick(self, now: float) -> None:
        for flow in self.flows.values():
            flow.path.poll(now)
            self._relay_events(flow)
            self._recognition(flow)
        if self._episodes:
            quiet = self.cfg.refusal_quiet_s
            while self._episodes and now - next(iter(self._episodes.values())) > quiet:
                self._episodes.popitem(last=False)

    def _relay_events(self, flow: Flow) -> None:
        f = flow.cfg
        for ev in flow.path.take_events():
            if isinstance(ev, ActiveSourceChanged):
                if ev.previous is not None:
                    flow.path.reset_analysis()
                    flow.measured = False
                flow.streaming, flow.ssrc = True, ev.ssrc
                if f.protocol == "rtp":
                    flow.provider = flow.path.last_sender
                self.emit(StreamStarted(
                    flow=f.id, event=f.event, transport=f.protocol, source=flow.provider,
                    ssrc=ev.ssrc, at=time.time(),
                ))  # fmt: skip
            elif isinstance(ev, SourceTimedOut | SourceLeft) and ev.was_active:
                self._stopped(flow, "timeout" if isinstance(ev, SourceTimedOut) else "bye")

    def _stopped(self, flow: Flow, reason: str) -> None:
        if not flow.streaming:
            return
        flow.streaming = False
        flow.path.reset_analysis()
        flow.measured = False
        self.emit(
            StreamStopped(flow=flow.cfg.id, event=flow.cfg.event, reason=reason, at=time.time())
        )

    def _recognition(self, flow: Flow) -> None:
        f = flow.cfg
        for ev in flow.path.take_recognition():
            if isinstance(ev, ProgramRecognised):
                streams = describe(ev)
                flow.recognised = {
                    "container": ev.container,
                    "program": ev.program_number,
                    "complete": ev.complete,
                    "streams": list(streams),
                }
                if streams != flow.announced:
                    flow.announced = streams
                    self.emit(StreamRecognised(
                        flow=f.id, event=f.event, container=ev.container, streams=streams,
                        complete=ev.complete, bitrate_bps=flow.path.bitrate.get("pcr"),
                        at=time.time(),
                    ))  # fmt: skip
            elif isinstance(ev, BitrateMeasured) and ev.basis == "pcr" and not flow.measured:
                flow.measured = True
                self.emit(StreamMeasured(
                    flow=f.id, event=f.event, bitrate_bps=ev.bits_per_second, at=time.time()
                ))  # fmt: skip

    # ----- control -------------------------------------------------------------------

    def configure(self, config: dict[str, Any]) -> bool:
        new = AcquirerConfig.parse(config)
        if (new.bind, new.relay) != (self.cfg.bind, self.cfg.relay):
            return False
        try:
            # Ports first: one that cannot be opened refuses the whole configuration.
            self._open_ports(new.udp_ports, new.tcp_ports)
        except OSError as e:
            raise c.ConfigError(f"config: cannot open a port: {e}") from None
        self.cfg = new
        self._reconcile(new)
        return True

    def _reconcile(self, new: AcquirerConfig) -> None:
        wanted = {fc.id: fc for fc in new.flows}
        for fid, flow in list(self.flows.items()):
            fc = wanted.get(fid)
            if fc is None or (fc.protocol, fc.port, fc.passphrase, fc.stream_secret,
                              fc.latency_ms) != (
                flow.cfg.protocol, flow.cfg.port, flow.cfg.passphrase, flow.cfg.stream_secret,
                flow.cfg.latency_ms
            ):  # fmt: skip
                del self.flows[fid]
                self._stopped(flow, "removed")
                self.later(flow.close())
        for fid, fc in wanted.items():
            current = self.flows.get(fid)
            if current is None:
                self._add_flow(fc)
                continue
            was_armed = current.cfg.event is not None and current.cfg.state in ARMED_STATES
            armed = fc.event is not None and fc.state in ARMED_STATES
            current.cfg = fc
            current.path.fanout.set_hops(fc.next_hops)
            if was_armed and not armed:
                self._stopped(current, "disarmed")
                if current.child is not None:
                    self.later(current.close())
            elif armed and current.child is None and fc.protocol != "rtp":
                current.open_ingest()
        self._index()
        for port in set(self.udp) - new.udp_ports:
            self.udp.pop(port).close()
        for port in set(self.tcp) - new.tcp_ports:
            _close_listener(self.tcp.pop(port))

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        wall = time.time()
        flows = {fid: f.stats(now, arming(f.cfg, wall)) for fid, f in self.flows.items()}
        return {
            **super().stats(),
            "flows": flows,
            "refused": dict(self.refused),
            "refused_octets": self.refused_octets,
            "listening": {"udp": len(self.udp), "tcp": len(self.tcp)},
        }

    def export_state(self) -> dict[str, Any]:
        return {
            **super().export_state(),
            "refused": dict(self.refused),
            "flows": {
                fid: {"announced": list(f.announced or ()), "recognised": f.recognised}
                for fid, f in self.flows.items()
            },
        }

    def import_state(self, state: dict[str, Any]) -> None:
        super().import_state(state)
        refused = state.get("refused")
        if isinstance(refused, Mapping):
            self.refused = {str(k): int(v) for k, v in refused.items() if isinstance(v, int)}
        flows = state.get("flows")
        if isinstance(flows, Mapping):
            self._imported = dict(flows)
            for fid, flow in self.flows.items():
                got = flows.get(fid)
                if isinstance(got, Mapping):
                    flow.announced = _streams(got.get("announced")) or flow.announced
                    if isinstance(got.get("recognised"), dict):
                        flow.recognised = got["recognised"]


def arming(f: FlowConfig, wall: float) -> str | None:
    """Why flow `f` takes no stream at wall-clock time `wall` (None: it is armed)."""
    if f.event is None:
        return "no_event"
    if f.state not in ARMED_STATES:
        return "event_ended"
    if (f.armed_from is not None and wall < f.armed_from) or (
        f.armed_until is not None and wall > f.armed_until
    ):
        return "outside_window"
    return None


def _close_listener(sock: socket.socket) -> None:
    with contextlib.suppress(RuntimeError, ValueError):
        asyncio.get_running_loop().remove_reader(sock.fileno())
    sock.close()


def _streams(value: Any) -> tuple[dict[str, Any], ...] | None:
    if not isinstance(value, list) or not value:
        return None
    return tuple(v for v in value if isinstance(v, dict))


def _iso(t: float | None) -> str:
    if t is None:
        return "any time"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
