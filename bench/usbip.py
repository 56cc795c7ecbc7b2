"""USB/IP benchmark: mass-storage throughput and per-URB latency over 127.0.0.1.

Ours (netfate HRH server + ISP client) against an independent implementation,
PyPI ``usbip`` 0.7.0 (its device server + its host client), both as shipped and
with its client socket tuned (TCP_NODELAY), in the same run, as ratios.  Each
server runs in its own process so that a client and its server do not share a
GIL; the client runs in this process.  Rounds alternate between the
implementations and the figures are medians (PLATFORM-NOTES: +-10-20 % noise).

Latency: median round trip of one small URB (GET_DESCRIPTOR on endpoint 0)
minus the median round trip of a plain 48-byte TCP echo over the same loopback
— what the USB/IP stack adds on top of the network.

    python bench/usbip.py [--size-mib 32] [--rounds 3] [--shipped-size-mib 4]

``run(argv) -> dict``; ``__main__`` prints the dict as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from netfate.host.ports import free_port as _free_port

BLOCK = 512
LATENCY_SAMPLES = 2000


def _pypi_usbip() -> ModuleType:
    """Import the PyPI ``usbip`` package, not this file (which has the same name)."""
    here = os.path.dirname(os.path.abspath(__file__))
    mine = sys.modules.get("usbip")
    if mine is not None and getattr(mine, "__file__", "") == os.path.abspath(__file__):
        del sys.modules["usbip"]
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != here]
    try:
        return importlib.import_module("usbip")
    finally:
        sys.path[:] = saved


def _cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of this process, plus the server child's if given."""
    t = os.times()
    total = t.user + t.system
    if pid is not None:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# --------------------------------------------------------------------------- #
# servers (child processes)
# --------------------------------------------------------------------------- #


def _serve_ours(image: str, port: int, ready: Any) -> None:
    from netfate.vnf.usbip_host import MassStorage, UsbipServer

    async def main() -> None:
        async with UsbipServer([MassStorage("1-1", Path(image))]) as srv:
            await srv.start("127.0.0.1", port)
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


def _serve_theirs(image: str, port: int, ready: Any) -> None:
    usbip = _pypi_usbip()
    from usbip.classes.device.msc import MSC
    from usbip.device import USBDevice

    class FileStore:
        block_size = BLOCK

        def __init__(self, path: str) -> None:
            self.fd = os.open(path, os.O_RDWR)
            self.num_blocks = os.fstat(self.fd).st_size // BLOCK

        def read(self, lba: int, count: int) -> bytes:
            return os.pread(self.fd, count * BLOCK, lba * BLOCK)

        def write(self, lba: int, count: int, data: bytes) -> None:
            os.pwrite(self.fd, data, lba * BLOCK)

    dev = USBDevice(0x1209, 0x0001, product="bench pendrive")
    dev.add(MSC(FileStore(image)))
    dev.plug(via=usbip.USBIP("127.0.0.1", port))
    ready.set()
    while True:
        time.sleep(3600)


class _Server:
    def __init__(self, target: Any, image: str) -> None:
        ctx = mp.get_context("fork")
        self.port = _free_port()
        ready = ctx.Event()
        self.proc = ctx.Process(target=target, args=(image, self.port, ready), daemon=True)
        self.proc.start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError(f"{target.__name__} did not start")

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()  # our own child, by its handle
        self.proc.join(10)


# --------------------------------------------------------------------------- #
# emulated access link: a delaying, rate-limiting TCP relay on loopback
# --------------------------------------------------------------------------- #


def _relay(listen_port: int, target_port: int, rtt_s: float, rate_bps: float, ready: Any) -> None:
    """Relay 127.0.0.1:listen_port → 127.0.0.1:target_port; each direction gets half the
    added RTT and the link rate (bytes leave one after another at ``rate_bps``).

    netem is not in this kernel (PLATFORM-NOTES), hence userspace.  The relay
    terminates TCP, so the endpoints' own window does not see the delay; what
    the emulation does impose is the part that hurts USB/IP — one round trip
    per URB that is not pipelined — and the rate limit.
    """

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        free_at = 0.0  # when the emulated wire is free again
        backlog = 0
        drained = asyncio.Event()
        drained.set()

        def release(chunk: bytes) -> None:
            nonlocal backlog
            writer.write(chunk)
            backlog -= len(chunk)
            if backlog < 4 << 20:
                drained.set()

        while True:
            chunk = await reader.read(16384)
            if not chunk:
                break
            now = loop.time()
            free_at = max(free_at, now) + len(chunk) * 8 / rate_bps
            backlog += len(chunk)
            loop.call_at(free_at + rtt_s / 2, release, chunk)
            if backlog >= 4 << 20:  # bound the relay's memory
                drained.clear()
                await drained.wait()
        await asyncio.sleep(rtt_s + 1)
        writer.close()

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", target_port)
        for w in (cw, sw):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(cr, sw), pipe(sr, cw), return_exceptions=True)

    async def main() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        ready.set()
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


class _Relay(_Server):
    def __init__(self, target_port: int, rtt_s: float, rate_bps: float) -> None:
        ctx = mp.get_context("fork")
        self.port = _free_port()
        ready = ctx.Event()
        self.proc = ctx.Process(
            target=_relay, args=(self.port, target_port, rtt_s, rate_bps, ready), daemon=True
        )
        self.proc.start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("relay did not start")


# --------------------------------------------------------------------------- #
# clients
# --------------------------------------------------------------------------- #


async def _ours_throughput(
    port: int, nbytes: int, command: int, depth: int = 1, pid: int | None = None
) -> tuple[float, float, float, float]:
    """(write MB/s, read MB/s, write CPU ms/MiB, read CPU ms/MiB) -- CPU of client + server."""
    from netfate.vnf.usbip_client import MassStorageClient, RemoteDevice

    dev = await RemoteDevice.attach("127.0.0.1", "1-1", port)
    try:
        msc = await MassStorageClient.open(dev, max_command=command, depth=depth)
        blocks = nbytes // BLOCK
        payload = os.urandom(nbytes)
        c0, t0 = _cpu(pid), time.perf_counter()
        await msc.write_blocks(0, payload)
        c1, t1 = _cpu(pid), time.perf_counter()
        back = await msc.read_blocks(0, blocks)
        c2, t2 = _cpu(pid), time.perf_counter()
        if back != payload:
            raise RuntimeError("ours: read back differs from what was written")
        mib = nbytes / (1 << 20)
        return (
            nbytes / (t1 - t0) / 1e6, nbytes / (t2 - t1) / 1e6,
            (c1 - c0) * 1e3 / mib, (c2 - c1) * 1e3 / mib,
        )  # fmt: skip
    finally:
        await dev.close()


def _theirs_open(port: int, nodelay: bool) -> Any:
    usbip = _pypi_usbip()

    class Tuned(usbip.USBIP):  # type: ignore[misc, name-defined]
        def connect(self) -> socket.socket:
            sock: socket.socket = super().connect()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock

    transport = Tuned("127.0.0.1", port) if nodelay else usbip.USBIP("127.0.0.1", port)
    return usbip.open(busid="1-1", transport=transport)


def _theirs_throughput(
    port: int, nbytes: int, command: int, nodelay: bool, pid: int | None = None
) -> tuple[float, float, float, float]:
    _pypi_usbip()
    from usbip.classes.host.msc import MSCDriver

    h = _theirs_open(port, nodelay)
    try:
        msc = MSCDriver(h)
        msc.read_capacity()
        per = command // BLOCK
        payload = os.urandom(nbytes)
        c0, t0 = _cpu(pid), time.perf_counter()
        for off in range(0, nbytes, command):
            msc.write_blocks(off // BLOCK, payload[off : off + command], BLOCK)
        c1, t1 = _cpu(pid), time.perf_counter()
        back = b"".join(
            msc.read_blocks(off // BLOCK, per, BLOCK) for off in range(0, nbytes, command)
        )
        c2, t2 = _cpu(pid), time.perf_counter()
        if back != payload:
            raise RuntimeError("theirs: read back differs from what was written")
        mib = nbytes / (1 << 20)
        return (
            nbytes / (t1 - t0) / 1e6, nbytes / (t2 - t1) / 1e6,
            (c1 - c0) * 1e3 / mib, (c2 - c1) * 1e3 / mib,
        )  # fmt: skip
    finally:
        h.close()


async def _ours_latency(port: int, samples: int) -> list[float]:
    from netfate.proto.usbip import SetupPacket
    from netfate.vnf.usbip_client import RemoteDevice

    dev = await RemoteDevice.attach("127.0.0.1", "1-1", port)
    try:
        setup = SetupPacket(0x80, 6, 0x0100, 0, 18)
        out = []
        for _ in range(samples):
            t = time.perf_counter()
            await dev.control(setup)
            out.append(time.perf_counter() - t)
        return out
    finally:
        await dev.close()


def _theirs_latency(port: int, samples: int) -> list[float]:
    h = _theirs_open(port, True)
    try:
        out = []
        for _ in range(samples):
            t = time.perf_counter()
            h.control(0x80, 6, 0x0100, 0, 18)
            out.append(time.perf_counter() - t)
        return out
    finally:
        h.close()


def _echo_server(port: int, ready: Any) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    ready.set()
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = conn.recv(48)
        if not data:
            return
        conn.sendall(data)


async def _tcp_rtt(samples: int) -> list[float]:
    """Baseline: asyncio client, 48 bytes out and back, server in another process."""
    ctx = mp.get_context("fork")
    port = _free_port()
    ready = ctx.Event()
    proc = ctx.Process(target=_echo_server, args=(port, ready), daemon=True)
    proc.start()
    ready.wait(10)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        out = []
        msg = bytes(48)
        for _ in range(samples):
            t = time.perf_counter()
            w.write(msg)
            await r.readexactly(48)
            out.append(time.perf_counter() - t)
        w.close()
        return out
    finally:
        proc.terminate()
        proc.join(10)


# --------------------------------------------------------------------------- #


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench/usbip.py", description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=32, help="bytes written then read per round")
    ap.add_argument("--shipped-size-mib", type=int, default=4, help="same, for the untuned peer")
    ap.add_argument("--command-kib", type=int, default=1024, help="SCSI READ/WRITE size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--depth", type=int, default=2, help="our client's BOT commands in flight (1 = strict BOT)"
    )
    ap.add_argument("--latency-samples", type=int, default=LATENCY_SAMPLES)
    ap.add_argument(
        "--wan",
        action="append",
        default=None,
        metavar="RTT_MS:MBIT",
        help="emulated links to measure, added RTT ms:Mbit/s (repeatable; default 0:100, 20:50,"
        " 40:50 -- the paper's same-network and WAN settings; 'none' skips)",
    )
    ap.add_argument("--wan-size-mib", type=int, default=16)
    ap.add_argument("--wan-theirs-size-mib", type=int, default=2)
    args = ap.parse_args(argv)
    wans = [w for w in (args.wan or ["0:100", "20:50", "40:50"]) if w != "none"]
    nbytes = args.size_mib * 1024 * 1024
    shipped_bytes = args.shipped_size_mib * 1024 * 1024
    command = args.command_kib * 1024

    with tempfile.TemporaryDirectory(prefix="netfate-bench-usbip-") as tmp:
        image = os.path.join(tmp, "pen.img")
        with open(image, "wb") as f:
            f.truncate(max(nbytes, shipped_bytes, args.wan_size_mib << 20))
        ours = _Server(_serve_ours, image)
        theirs = _Server(_serve_theirs, image)
        try:
            rows: dict[str, list[tuple[float, float, float, float]]] = {
                "ours": [], "tuned": [], "shipped": []
            }  # fmt: skip
            for _ in range(args.rounds):
                rows["ours"].append(
                    asyncio.run(
                        _ours_throughput(ours.port, nbytes, command, args.depth, ours.proc.pid)
                    )
                )
                rows["tuned"].append(
                    _theirs_throughput(theirs.port, nbytes, command, True, theirs.proc.pid)
                )
                rows["shipped"].append(
                    _theirs_throughput(theirs.port, shipped_bytes, command, False, theirs.proc.pid)
                )
            lat_ours = asyncio.run(_ours_latency(ours.port, args.latency_samples))
            lat_theirs = _theirs_latency(theirs.port, args.latency_samples)
            lat_tcp = asyncio.run(_tcp_rtt(args.latency_samples))
            wan_rows = {w: _wan(w, ours.port, theirs.port, args, command) for w in wans}
        finally:
            ours.stop()
            theirs.stop()

    def med(name: str, k: int) -> float:
        return round(statistics.median(r[k] for r in rows[name]), 2 if k >= 2 else 1)

    w = {n: med(n, 0) for n in rows}
    r = {n: med(n, 1) for n in rows}
    tcp = statistics.median(lat_tcp)
    return {
        "bench": "usbip",
        "transport": "127.0.0.1 (loopback), servers in child processes",
        "bytes_per_round": nbytes,
        "command_bytes": command,
        "ours_commands_in_flight": args.depth,
        "rounds": args.rounds,
        "write_MBps": {"ours": w["ours"], "pypi_usbip_tuned": w["tuned"],
                       "pypi_usbip_shipped": w["shipped"]},
        "read_MBps": {"ours": r["ours"], "pypi_usbip_tuned": r["tuned"],
                      "pypi_usbip_shipped": r["shipped"]},
        "ratio_vs_tuned": {"write": round(w["ours"] / w["tuned"], 2),
                           "read": round(r["ours"] / r["tuned"], 2)},
        "ratio_vs_shipped": {"write": round(w["ours"] / w["shipped"], 1),
                             "read": round(r["ours"] / r["shipped"], 1)},
        # CPU (client + server, user + system) per MiB moved: unlike MB/s on a
        # shared 2-core machine, this does not depend on what else is running.
        "cpu_ms_per_MiB": {
            "write": {"ours": med("ours", 2), "pypi_usbip_tuned": med("tuned", 2)},
            "read": {"ours": med("ours", 3), "pypi_usbip_tuned": med("tuned", 3)},
        },
        "urb_latency_ms": {
            "tcp_rtt_median": round(tcp * 1e3, 4),
            "ours_median": round(statistics.median(lat_ours) * 1e3, 4),
            "pypi_usbip_tuned_median": round(statistics.median(lat_theirs) * 1e3, 4),
            "ours_added_median": round((statistics.median(lat_ours) - tcp) * 1e3, 4),
            "ours_p99": round(statistics.quantiles(lat_ours, n=100)[98] * 1e3, 4),
        },
        "emulated_links": wan_rows,
    }  # fmt: skip


def _wan(spec: str, ours_port: int, theirs_port: int, args: Any, command: int) -> dict[str, Any]:
    rtt_ms, mbit = (float(x) for x in spec.split(":"))
    capacity = mbit * 1e6 / 8 / 1e6  # payload MB/s the link can carry
    r1 = _Relay(ours_port, rtt_ms / 1e3, mbit * 1e6)
    r2 = _Relay(theirs_port, rtt_ms / 1e3, mbit * 1e6)
    try:
        ow, orr, _, _ = asyncio.run(
            _ours_throughput(r1.port, args.wan_size_mib << 20, command, args.depth)
        )
        tw, tr, _, _ = _theirs_throughput(r2.port, args.wan_theirs_size_mib << 20, command, True)
    finally:
        r1.stop()
        r2.stop()
    return {
        "added_rtt_ms": rtt_ms,
        "rate_mbit": mbit,
        "link_payload_MBps": round(capacity, 2),
        "ours_MBps": {"write": round(ow, 2), "read": round(orr, 2)},
        "pypi_usbip_tuned_MBps": {"write": round(tw, 2), "read": round(tr, 2)},
        "ours_link_use": {"write": round(ow / capacity, 2), "read": round(orr / capacity, 2)},
        "ratio_vs_tuned": {"write": round(ow / tw, 1), "read": round(orr / tr, 1)},
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
