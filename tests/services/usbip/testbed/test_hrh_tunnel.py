"""HRH tunnels under SDN control (issue 6 item 5): real OVS bridges in secure mode,
the netfate controller, and the mutual-TLS USB/IP tunnel between them.

Topology (tests/sdn_rig.py): bridge `hrh` (the Home Radio Head's datapath) with the
HRH's USB/IP endpoint, bridge `isp` with the ISP function, one link.  The
orchestrator is the SDN tests' stand-in (FakeOrchestrator) serving the view and
the intents; the controller is the real one, in its own process.

No intent: the ISP function cannot even open TCP to the HRH.  A tunnel intent
(ISP function -> HRH on tcp/3240): the TLS import works and data moves.
Intent removed: the open tunnel stops carrying data and a new one cannot open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.host import netns
from netfate.host.netns import connect_in
from netfate.orchestrator.sdn.intents import cookie_for, parse_intent
from netfate.vnf.pki import CertificateAuthority
from netfate.vnf.usbip_client import MassStorageClient, UsbipError
from netfate.vnf.usbip_client.tls import TlsRemoteDevice, client_context
from netfate.vnf.usbip_host import AllowList, MassStorage, SerialSensor
from netfate.vnf.usbip_host.tls import TlsUsbipServer, server_context
from sdn_rig import ControllerProcess, FakeOrchestrator, Rig, wait_until

PORT = 6653
HRH_IP, ISP_IP = "10.0.7.20", "10.0.7.30"
TUNNEL = {
    "kind": "tunnel",
    "id": "hrh-usbip",
    "a": "host:ispfn",
    "b": "host:hrhusb",
    "protocol": "tcp",
    "port": 3240,
}


class Net:
    def __init__(self, tmp: Path) -> None:
        self.rig = Rig("nft" + secrets.token_hex(2), controller_port=PORT)
        self.orch = FakeOrchestrator()
        self.tmp = tmp
        self.ctl: ControllerProcess | None = None

    def build(self) -> None:
        r = self.rig
        r.start()
        r.add_node("hrh")
        r.add_node("isp")
        r.link("hrh", "isp")
        r.add_endpoint("hrhusb", "hrh", HRH_IP)
        r.add_endpoint("ispfn", "isp", ISP_IP)
        self.orch.set(view=r.view())
        self.ctl = ControllerProcess(self.orch.url, PORT, r.sw, self.tmp / "ctl.log")
        r.wait_connected()

    def flows(self, node: str) -> list[str]:
        c = cookie_for(TUNNEL["id"])  # type: ignore[arg-type]
        return [f for f in self.rig.flows(node) if f"cookie={c:#x}," in f]

    def close(self) -> None:
        try:
            if self.ctl is not None:
                print(self.ctl.output()[-4000:])
                self.ctl.stop()
        finally:
            self.rig.close()
            self.orch.close()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net(tmp_path_factory.mktemp("hrh-sdn"))
    try:
        n.build()
        yield n
    finally:
        n.close()


async def connect_retrying(ns: str, ip: str, port: int, within: float = 20.0) -> socket.socket:
    """Connect once the path is open; the failed ARP of the closed phase may linger
    (EHOSTUNREACH) until the neighbour entry is retried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await connect_in(ns, ip, port, 2.0)
        except (OSError, TimeoutError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_usbip_passes_only_while_the_tunnel_intent_exists(net: Net, tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    hrh_files = ca.issue("hrh-1", usage="server", names=(HRH_IP,))
    isp_files = ca.issue("isp-fn-1", usage="client")
    image = tmp_path / "pen.img"
    image.write_bytes(os.urandom(4 * 1024 * 1024))
    hrh_ns, isp_ns = net.rig.endpoints["hrhusb"].netns, net.rig.endpoints["ispfn"].netns

    async def main() -> None:
        srv = TlsUsbipServer(
            [SerialSensor("1-1", period=0.05), MassStorage("1-2", image)],
            context=server_context(hrh_files),
            allow=AllowList.from_mapping({"*": ["isp-fn-1"]}),
        )
        lsock = netns.socket_in(hrh_ns, socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((HRH_IP, 3240))
        lsock.listen(16)
        lsock.setblocking(False)
        await srv.start(sock=lsock)
        ctx = client_context(isp_files)
        try:
            # 1. no intent: nothing reaches the HRH, not even a TCP handshake
            with pytest.raises((OSError, TimeoutError)):
                (await connect_in(isp_ns, HRH_IP, 3240, 2.0)).close()
            assert srv.refused == [] and srv.owners == {}

            # 2. the orchestrator opens the tunnel: TLS import, data both ways
            net.orch.set(intents=[parse_intent(TUNNEL)])
            await asyncio.to_thread(
                wait_until, lambda: net.flows("hrh") and net.flows("isp"), what="tunnel flows"
            )
            dev = await TlsRemoteDevice.open_tls(
                HRH_IP, "1-2", 3240, context=ctx, server_hostname="hrh-1",
                sock=await connect_retrying(isp_ns, HRH_IP, 3240),
            )  # fmt: skip
            msc = await MassStorageClient.open(dev, depth=2)
            data = os.urandom(1024 * 1024)
            await msc.write_blocks(0, data)
            assert await msc.read_blocks(0, len(data) // 512) == data
            assert srv.owners.keys() == {"1-2"}

            # only tcp/3240 towards the HRH: another port stays closed
            with pytest.raises((OSError, TimeoutError)):
                (await connect_in(isp_ns, HRH_IP, 3241, 2.0)).close()

            # 3. the intent goes: the open tunnel carries nothing more
            net.orch.set(intents=[])
            await asyncio.to_thread(
                wait_until, lambda: not net.flows("hrh") and not net.flows("isp"), what="removal"
            )
            reading = asyncio.ensure_future(msc.read_blocks(0, 8))
            done, _ = await asyncio.wait([reading], timeout=3.0)
            assert not done, "data passed after the tunnel intent was removed"
            with pytest.raises((OSError, TimeoutError)):
                (await connect_in(isp_ns, HRH_IP, 3240, 2.0)).close()
            # The application gives up on the cut path (an abort: a graceful TLS
            # close would wait for a peer it cannot reach): a clean error.
            transport = dev._proto.transport
            assert transport is not None
            transport.abort()
            with pytest.raises(UsbipError):
                await reading
            await dev._proto.closed
        finally:
            with contextlib.suppress(Exception):
                await srv.close()

    asyncio.run(main())
