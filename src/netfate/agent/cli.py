"""`netfate agent`: run the agent of one node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netfate.clihelp import CaOption

if TYPE_CHECKING:
    import ssl

    from netfate.agent.agent import AgentConfig
    from netfate.agent.instances import Zygote
    from netfate.host.ovs import Vsctl


# Options `netfate agent` and `netfate agents` (group.py) share.
OrchestratorOpt = Annotated[str, typer.Option(help="Orchestrator URL, http://HOST:PORT")]
OvsDbOpt = Annotated[str, typer.Option(help="OVSDB socket, unix:PATH")]
OvsNetnsOpt = Annotated[
    str | None, typer.Option(help="Namespace where ovs-vswitchd runs (testbed)")
]
LogLevelOpt = Annotated[str, typer.Option(help="debug, info, warning")]
NoZygoteOpt = Annotated[
    bool, typer.Option("--no-zygote", help="Start each instance as a new interpreter")
]
ImageDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Paths an instance writes as root (USB/IP storage images, pty links, streaming "
        "recording volumes) lie below this directory (default /var/lib/netfate/images)"
    ),
]
OVS_DB = "unix:/var/run/openvswitch/db.sock"


def agent(
    node: Annotated[str, typer.Option(help="Name of the node this agent manages")],
    orchestrator: OrchestratorOpt,
    netns: Annotated[
        str | None, typer.Option(help="The node's namespace (testbed); omit on real hardware")
    ] = None,
    ovs_db: OvsDbOpt = OVS_DB,
    ovs_netns: OvsNetnsOpt = None,
    bridge: Annotated[str | None, typer.Option(help="The node's OVS bridge")] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where instance files live (default /run/netfate/agent-NODE)"),
    ] = None,
    prefix: Annotated[str, typer.Option(help="Prefix of every name this agent creates")] = "nf",
    listen: Annotated[str, typer.Option(help="HOST:PORT for agent-to-agent migration")] = (
        "127.0.0.1:0"
    ),
    advertise: Annotated[
        str | None,
        typer.Option(
            help="The address other agents reach the migration listener at (default: the "
            "--listen host; give a routable one when listening on 0.0.0.0 or between hosts)"
        ),
    ] = None,
    migration_netns: Annotated[
        str | None,
        typer.Option(
            help="Namespace the migration listener and connections live in (testbed: the "
            "node's, with --listen on its transit address, so migrations cross the emulated "
            "links); omit on real hardware"
        ),
    ] = None,
    ca: CaOption = None,
    heartbeat: Annotated[float, typer.Option(help="Seconds between reports")] = 1.0,
    metrics: Annotated[
        str | None,
        typer.Option(help="Serve Prometheus metrics on this loopback HOST:PORT (PORT 0: any)"),
    ] = None,
    log_level: LogLevelOpt = "info",
    no_zygote: NoZygoteOpt = False,
    image_dir: ImageDirOpt = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding this node's agent token (from the operator: `netfate accounts "
            "agent-token NODE`); or set NETFATE_TOKEN"
        ),
    ] = None,
) -> None:
    """Converge NODE to the desired state the orchestrator holds, and report."""
    from netfate.agent.agent import Agent
    from netfate.agent.instances import Zygote
    from netfate.clihelp import client_tls, read_token
    from netfate.host.ovs import Vsctl

    # Instance ports are named prefix + "v" + hash within 15 bytes (IFNAMSIZ).
    check_prefix(prefix)
    verify = client_tls(ca)
    metrics_at = metrics_address(metrics) if metrics is not None else None
    token = read_token(token_file)
    logging.basicConfig(
        level=log_level.upper(), format=f"%(asctime)s agent[{node}] %(levelname)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Ports added or removed while Open vSwitch restarts wait for it (60 s at most).
    vsctl = Vsctl(ovs_db, wait_for_db=True)
    state_root = state_dir or Path("/run/netfate") / f"agent-{node}"
    cfg = node_config(
        node=node,
        orchestrator=orchestrator,
        listen=listen,
        advertise=advertise,
        migration_netns=migration_netns,
        state_dir=state_root,
        bridge=bridge or f"{prefix}-{node}",
        prefix=prefix,
        vsctl=vsctl,
        ovs_netns=ovs_netns,
        zygote=None if no_zygote else Zygote(state_root),
        offloads=switch_tso(vsctl),
        image_dir=image_dir,
        heartbeat=heartbeat,
        metrics_at=metrics_at,
        verify=verify,
        token=token,
    )
    # `netns` (the node's own namespace) is where node-level functions would live; the
    # agent process itself stays in the root namespace so it reaches the orchestrator.
    del netns
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Agent(cfg).run())


def check_prefix(prefix: str) -> None:
    if not 1 <= len(prefix) <= 8 or not prefix.isalnum():
        raise typer.BadParameter("1 to 8 letters or digits", param_hint="--prefix")


def node_config(
    *,
    node: str,
    orchestrator: str,
    listen: str,
    advertise: str | None,
    migration_netns: str | None,
    state_dir: Path,
    bridge: str,
    prefix: str,
    vsctl: Vsctl,
    ovs_netns: str | None,
    zygote: Zygote | None,
    offloads: bool,
    image_dir: Path | None,
    heartbeat: float,
    metrics_at: tuple[str, int] | None,
    verify: ssl.SSLContext | bool,
    token: str | None,
    own_zygote: bool = True,
    watch_ports: bool = True,
) -> AgentConfig:
    """One node's agent configuration (`netfate agent`, and each node of `netfate
    agents`); makes its state directory. BadParameter for a bad listen/advertise."""
    from netfate.agent.agent import AgentConfig
    from netfate.agent.channel import ChannelError, choose
    from netfate.agent.instances import NodeContext
    from netfate.clihelp import parse_hostport
    from netfate.host.private import private_dir
    from netfate.vnf import registry

    host, port = parse_hostport(listen) if not listen.endswith(":0") else (listen[:-2], 0)
    if advertise is not None and not _is_host(advertise):
        raise typer.BadParameter(f"expected a host name or address (no port), got {advertise!r}",
                                 param_hint="--advertise")  # fmt: skip
    try:
        where = choose(host, port, advertise, migration_netns)
    except ChannelError as e:
        raise typer.BadParameter(str(e), param_hint="--listen / --advertise") from None
    # It holds the functions' configurations (their secrets) and control sockets.
    private_dir(state_dir)
    ctx = NodeContext(
        node=node,
        prefix=prefix,
        state_dir=state_dir,
        bridge=bridge,
        vsctl=vsctl,
        ovs_netns=ovs_netns,
        zygote=zygote,
        offloads=offloads,
        image_dir=image_dir or registry.DEFAULT_IMAGE_DIR,
    )
    return AgentConfig(
        ctx=ctx,
        orchestrator=orchestrator,
        listen_host=where.host,
        listen_port=where.port,
        advertise_host=where.advertise,
        migration_netns=where.netns,
        heartbeat_s=heartbeat,
        metrics_host=metrics_at[0] if metrics_at else "127.0.0.1",
        metrics_port=metrics_at[1] if metrics_at else None,
        verify=verify,
        token=token,
        own_zygote=own_zygote,
        watch_ports=watch_ports,
    )


def _is_host(text: str) -> bool:
    """A host name or an address, without a port (an IPv6 address has colons)."""
    import ipaddress

    if ":" in text:
        try:
            ipaddress.IPv6Address(text.strip("[]"))
        except ValueError:
            return False
        return True
    return bool(text) and not any(c.isspace() or c in "/@[]" for c in text)


def switch_tso(vsctl: Vsctl) -> bool:
    """The switch's userspace TSO setting, read once. Unreadable: offloads off, which
    carries TCP with TSO on or off (only slower)."""
    from netfate.host.ovs import OvsError

    try:
        return vsctl.userspace_tso()
    except OvsError as e:
        logging.getLogger("netfate.agent").warning("cannot read the switch's TSO setting: %s", e)
        return False


def metrics_address(text: str) -> tuple[str, int]:
    from netfate.clihelp import parse_hostport
    from netfate.metrics.exposition import check_loopback

    try:
        host, port = parse_hostport(text) if not text.endswith(":0") else (text[:-2], 0)
        return check_loopback(host), port
    except (ValueError, typer.BadParameter) as e:
        raise typer.BadParameter(str(e), param_hint="--metrics") from None
