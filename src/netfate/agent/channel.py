"""Where an agent's migration channel lives: the namespace its sockets are made in,
the address it listens on, and the endpoint the orchestrator hands to other agents.

On real hardware the agent is the host: it listens on one of the host's addresses
(or on every address, with `--advertise` naming the routable one) and connects
from the host, as any process does.

In the testbed every agent process runs in the root namespace, but its node is a
namespace joined to the others by the emulated links. A channel on the root
namespace's loopback would carry a migration's snapshot and final state past the
links' delay, rate and background load. So the testbed gives each agent its node's
namespace (`--migration-netns`) and its node's transit address (`--listen`): the
listening socket and every connection to another agent are created inside that
namespace (host/netns.py, a socket made by a thread that entered it; the agent's
own thread and event loop never switch), and the bytes go node namespace -> bridge
-> link -> bridge -> node namespace. The root namespace gets no route into the
emulated prefixes: it never could reach such an endpoint, and never tries.

    real hardware   netns None   listen 10.0.0.5:7000 (or 0.0.0.0 + --advertise)
    testbed         netns P-n1   listen <n1's transit address>:0 -> 10.255.0.1:PORT

A loopback address inside a node's namespace is that namespace's own: no other
node could reach it, so `choose` refuses it (as it refuses an unspecified address
without an advertised one, which nobody could dial either).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from netfate.host import netns as _netns

__all__ = ["Channel", "ChannelError", "choose", "connect", "listen"]

ClientCb = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ChannelError(ValueError):
    """The listen address, advertised host and namespace do not make a reachable
    endpoint (the message says why)."""


@dataclass(frozen=True)
class Channel:
    """Where this agent's migration sockets are made and what it advertises."""

    host: str
    """The address the listener binds (an IP address, or a name on real hardware)."""
    port: int
    """0: any free port (the advertised endpoint then carries the one bound)."""
    netns: str | None = None
    """The node's namespace (testbed); None: the agent's own (real hardware)."""
    advertise: str | None = None
    """The host other agents dial; None: `host`."""

    def endpoint(self, bound_port: int) -> str:
        """HOST:PORT for the orchestrator, with the port actually bound."""
        host = self.advertise or self.host
        if ":" in host:  # IPv6
            host = f"[{host.strip('[]')}]"
        return f"{host}:{bound_port}"


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def choose(host: str, port: int, advertise: str | None, netns: str | None) -> Channel:
    """The channel for `--listen HOST:PORT`, `--advertise`, `--migration-netns`, or a
    ChannelError naming the option to fix."""
    if not 0 <= port < 65536:
        raise ChannelError(f"port {port} is out of range")
    addr = _address(host)
    unspecified = host in ("", "0.0.0.0", "::", "[::]")
    if unspecified and advertise is None:
        raise ChannelError(
            f"listening on {host or 'every address'}, other agents need --advertise HOST"
        )
    if netns is None:
        return Channel(host, port, None, advertise)  # "" binds every address, as before
    # Inside a node's namespace: an address of that namespace, which other nodes reach
    # over the emulated links.
    if host == "localhost" or (addr is not None and addr.is_loopback):
        raise ChannelError(
            f"{host} inside namespace {netns} is that namespace's own loopback: no other "
            "node reaches it; listen on the node's transit address"
        )
    if addr is None and not unspecified:
        raise ChannelError(
            f"in namespace {netns} the listener needs an address, not the name {host!r} "
            "(names resolve with the root namespace's view)"
        )
    if advertise is not None and _address(advertise) is None:
        raise ChannelError(f"in namespace {netns} --advertise must be an address")
    return Channel(host or "0.0.0.0", port, netns, advertise)


def _family(host: str) -> int:
    addr = _address(host)
    return socket.AF_INET6 if addr is not None and addr.version == 6 else socket.AF_INET


async def listen(ch: Channel, client: ClientCb, limit: int) -> asyncio.Server:
    """The migration server: in the agent's own namespace as any asyncio server, or
    on a socket made inside `ch.netns` (bound and listening before it is handed to
    asyncio, which serves it from this thread's loop)."""
    if ch.netns is None:
        return await asyncio.start_server(client, ch.host, ch.port, limit=limit)
    host = ch.host.strip("[]")
    sock = _netns.socket_in(ch.netns, _family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, ch.port))
        sock.listen(64)
        sock.setblocking(False)
        return await asyncio.start_server(client, sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise


async def connect(
    netns: str | None, host: str, port: int, limit: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to another agent's channel, opened from `netns` (None: here)."""
    host = host.strip("[]")
    if netns is None:
        return await asyncio.wait_for(asyncio.open_connection(host, port, limit=limit), timeout)
    sock = _netns.socket_in(netns, _family(host), socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
        return await asyncio.open_connection(sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise
