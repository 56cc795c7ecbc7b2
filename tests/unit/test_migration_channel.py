"""Where the migration channel lives (agent/channel.py): the endpoint an agent
advertises, in its own namespace (real hardware) or in its node's (testbed), and the
listen addresses no other node could reach, refused with the option to fix.

Also the channel's I/O in the agent's own namespace (127.0.0.1 here): listen, then
connect and exchange a line; the namespaced path is tests/netns/test_migration_channel.py.
"""

from __future__ import annotations

import asyncio

import pytest

from netfate.agent import channel
from netfate.agent.channel import Channel, ChannelError, choose


def test_real_hardware_listens_and_advertises_the_hosts_address() -> None:
    ch = choose("10.0.0.5", 7000, None, None)
    assert ch == Channel("10.0.0.5", 7000, None, None)
    assert ch.endpoint(7000) == "10.0.0.5:7000"
    # Every address, with the routable one advertised (several machines).
    ch = choose("0.0.0.0", 7000, "10.201.2.2", None)
    assert (ch.netns, ch.endpoint(7000)) == (None, "10.201.2.2:7000")
    # The default: loopback, for agents on one machine that share it.
    assert choose("127.0.0.1", 0, None, None).endpoint(41234) == "127.0.0.1:41234"
    # A name is fine where the host resolves it.
    assert choose("edge-3.example", 7000, None, None).endpoint(7000) == "edge-3.example:7000"


def test_the_testbed_channel_is_the_nodes_transit_address_in_its_namespace() -> None:
    ch = choose("10.255.0.2", 0, None, "nf12-cpe1")
    assert (ch.netns, ch.host, ch.port) == ("nf12-cpe1", "10.255.0.2", 0)
    # The port bound (any free one in the namespace) goes into the endpoint.
    assert ch.endpoint(38211) == "10.255.0.2:38211"
    ch = choose("0.0.0.0", 0, "10.255.0.2", "nf12-cpe1")
    assert ch.endpoint(5) == "10.255.0.2:5"


def test_ipv6_endpoints_are_bracketed() -> None:
    assert choose("fd00::2", 7000, None, "nf1-n1").endpoint(7000) == "[fd00::2]:7000"
    assert choose("::", 7000, "fd00::2", None).endpoint(7000) == "[fd00::2]:7000"


@pytest.mark.parametrize(
    ("host", "advertise", "netns", "why"),
    [
        # nobody can dial "every address"
        ("0.0.0.0", None, None, "--advertise"),
        ("", None, None, "--advertise"),
        ("::", None, "nf1-n1", "--advertise"),
        # a node namespace's loopback is its own: no other node reaches it
        ("127.0.0.1", None, "nf1-n1", "own loopback"),
        ("localhost", None, "nf1-n1", "own loopback"),
        ("::1", None, "nf1-n1", "own loopback"),
        # names resolve with the root namespace's view, not the node's
        ("cpe1.local", None, "nf1-n1", "not the name"),
        ("0.0.0.0", "cpe1.local", "nf1-n1", "must be an address"),
    ],
)
def test_unreachable_endpoints_are_refused(
    host: str, advertise: str | None, netns: str | None, why: str
) -> None:
    with pytest.raises(ChannelError, match=why):
        choose(host, 0, advertise, netns)


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(ChannelError, match="out of range"):
        choose("10.0.0.5", 65536, None, None)


def test_listen_and_connect_in_the_agents_own_namespace() -> None:
    async def run() -> bytes:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"got " + await r.readline())
            await w.drain()
            w.close()

        ch = choose("127.0.0.1", 0, None, None)
        server = await channel.listen(ch, echo, 1 << 16)
        port = server.sockets[0].getsockname()[1]
        try:
            host, _, p = ch.endpoint(port).rpartition(":")
            r, w = await channel.connect(None, host, int(p), 1 << 16, 5.0)
            w.write(b"hello\n")
            await w.drain()
            line = await r.readline()
            w.close()
            return line
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(run()) == b"got hello\n"
