"""HRH and ISP in their own namespaces: USB/IP across a veth link, allow-list by address.

hrh (10.92.1.1, 10.92.2.1) runs ``netfate usbip serve``; isp (10.92.1.2) is
allowed, other (10.92.2.2) is not.  Clients run inside their namespaces
(``ip netns exec``): Debian's ``usbip list -r`` and our ISP client.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.host import links, netns
from netfate.vnf.usbip_client import RemoteDevice, list_devices

SERVE = "from netfate.services.usbip.cli import app; app()"

CLIENT = r"""
import asyncio, hashlib, json, os, sys
from netfate.vnf.usbip_client import (
    ImportRefusedError, MassStorageClient, RemoteDevice, list_devices,
)

async def main(host):
    out = {"listed": [d.busid for d in await list_devices(host, 3240)]}
    try:
        dev = await RemoteDevice.attach(host, "1-2", 3240)
    except ImportRefusedError as err:
        out["refused"] = err.status
        return out
    msc = await MassStorageClient.open(dev, depth=2)
    data = os.urandom(4 << 20)
    await msc.write_blocks(0, data)
    back = await msc.read_blocks(0, len(data) // 512)
    out["roundtrip_ok"] = back == data
    out["written_sha"] = hashlib.sha256(data).hexdigest()
    serial = await RemoteDevice.attach(host, "1-1", 3240)
    await serial.bulk_out(2, b"ping\n")
    got = b""
    while b"pong" not in got:
        got += await serial.bulk_in(1, 512)
    out["pong"] = True
    await serial.close()
    await dev.close()
    return out

print(json.dumps(asyncio.run(main(sys.argv[1]))))
"""


@pytest.fixture
def hrh(run_prefix: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    names = {k: f"{run_prefix}-{k}" for k in ("hrh", "isp", "other")}
    image = tmp_path / "pendrive.img"
    image.write_bytes(bytes(8 << 20))
    proc = None
    try:
        for n in names.values():
            netns.ensure(n)
        for i, peer in ((1, names["isp"]), (2, names["other"])):
            links.veth_pair(f"eth{i}", names["hrh"], "eth0", peer)
            links.add_address(names["hrh"], f"eth{i}", f"10.92.{i}.1/24")
            links.add_address(peer, "eth0", f"10.92.{i}.2/24")
            links.set_up(names["hrh"], f"eth{i}")
            links.set_up(peer, "eth0")
        for n in names.values():
            links.set_up(n, "lo")
        # 100 Mbit/s access link between HRH and ISP (the paper's "same network").
        netns.run_in(
            names["hrh"],
            ["tc", "qdisc", "add", "dev", "eth1", "root", "tbf", "rate", "100mbit",
             "burst", "64kb", "latency", "50ms"],
        )  # fmt: skip
        proc = netns.popen_in(
            names["hrh"],
            [sys.executable, "-c", SERVE, "serve", "--host", "0.0.0.0", "--port", "3240",
             "--storage", str(image), "--hid", "--period", "0.2", "--allow", "10.92.1.2"],
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            probe = netns.run_in(
                names["isp"], ["bash", "-c", "exec 3<>/dev/tcp/10.92.1.1/3240"], check=False
            )
            if probe.returncode == 0:
                break
            assert proc.poll() is None, "server exited before it was ready"
            assert time.monotonic() < deadline, "server not ready after 30 s"
            time.sleep(0.1)
        yield {**names, "image": image}
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()  # our own server, by its handle
            proc.wait(timeout=10)
        for n in names.values():
            netns.remove(n)


def _client(ns: str, host: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[4] / "src")}
    r = netns.run_in(ns, [sys.executable, "-c", CLIENT, host], timeout=120, env=env)
    result: dict[str, object] = json.loads(r.stdout)
    return result


@pytest.mark.skipif(shutil.which("usbip") is None, reason="Debian usbip tool not installed")
def test_debian_usbip_lists_our_devices_across_namespaces(hrh: dict[str, object]) -> None:
    r = netns.run_in(str(hrh["isp"]), ["usbip", "--tcp-port", "3240", "list", "-r", "10.92.1.1"])
    assert "1-1: " in r.stdout and "1-2: " in r.stdout and "1-3: " in r.stdout
    assert "(08/06/50)" in r.stdout and "(03/01/01)" in r.stdout


def test_isp_client_over_shaped_link(hrh: dict[str, object]) -> None:
    out = _client(str(hrh["isp"]), "10.92.1.1")
    assert out["listed"] == ["1-1", "1-2", "1-3"]
    assert out["roundtrip_ok"] is True and out["pong"] is True
    image = Path(str(hrh["image"])).read_bytes()
    assert hashlib.sha256(image[: 4 << 20]).hexdigest() == out["written_sha"]


def test_allow_list_refuses_other_client(hrh: dict[str, object]) -> None:
    out = _client(str(hrh["other"]), "10.92.2.1")
    assert out["listed"] == []
    assert out["refused"] == 4  # ST_NODEV


def test_root_namespace_client_through_a_socket_opened_in_isp(hrh: dict[str, object]) -> None:
    # DESIGN: the root namespace reaches into a namespace by opening sockets in it.
    def connected() -> socket.socket:
        s = netns.socket_in(str(hrh["isp"]), socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("10.92.1.1", 3240))
        s.setblocking(False)
        return s

    async def main() -> tuple[list[str], bytes]:
        listed = [d.busid for d in await list_devices("", sock=connected())]
        dev = await RemoteDevice.attach("", "1-3", sock=connected())
        desc = await dev.get_descriptor(1, 0, 18)
        await dev.close()
        return listed, desc

    listed, desc = asyncio.run(main())
    assert listed == ["1-1", "1-2", "1-3"]
    assert desc[:2] == b"\x12\x01" and desc[8:12] == bytes.fromhex("6b1d0701")
