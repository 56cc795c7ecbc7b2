"""The `netfate` command: one entry point, one sub-command group per part.

This is the top floor (docs/ARCHITECTURE.md): the only place that knows both
the parts and the registered services (netfate.services). It hands the
services to the parts that serve them: the orchestrator (create_app with their
contracts), `netfate demo`, `netfate experiment`, `netfate bench`; and it mounts
each service's CLI group (`netfate NAME ...`).

Each part owns its typer command or app in its own package; this module only
mounts them. Mounting is lazy: `netfate agent` imports the agent and nothing
else, because a 100-node testbed starts 100 agents and every import of the
testbed builder, the SDN controller, the web code or a service would cost each
of them start-up time on a 2-core machine. `netfate --help` still lists everything.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer

from netfate.contract import Service, load


@dataclass(frozen=True)
class Part:
    spec: str
    """"module:attribute": a command function or a typer app, or (wired) a function
    of the services that returns one."""
    kind: str
    """command: a function; group: a typer app; merge: a typer app whose commands
    join the root (the SDN app brings `controller` and `flow`); bench: a command
    that passes unknown options on."""
    wired: bool = False


PARTS: dict[str, Part] = {
    "orchestrator": Part("netfate.orchestrator.cli:command", "command", wired=True),
    "agent": Part("netfate.agent.cli:agent", "command"),
    "agents": Part("netfate.agent.group:agents", "command"),
    "demo": Part("netfate.demo.cli:command", "command", wired=True),
    "vnf": Part("netfate.orchestrator.vnf_cli:app", "group"),
    "node": Part("netfate.orchestrator.node_cli:app", "group"),
    "events": Part("netfate.orchestrator.events_cli:events", "command"),
    "login": Part("netfate.orchestrator.identity.cli:login", "command"),
    "logout": Part("netfate.orchestrator.identity.cli:logout", "command"),
    "accounts": Part("netfate.orchestrator.identity.cli:accounts", "group"),
    "admin": Part("netfate.orchestrator.identity.admin:command", "group", wired=True),
    "frontdoor": Part("netfate.frontdoor:command", "command", wired=True),
    "testbed": Part("netfate.testbed.cli:app", "group"),
    "controller": Part("netfate.orchestrator.sdn.cli:app", "merge"),
    "flow": Part("netfate.orchestrator.sdn.cli:app", "merge"),
    "bench": Part("netfate.benchcli:command", "bench", wired=True),
    "experiment": Part("netfate.experiment.cli:app", "group", wired=True),
}


def build(only: str | None = None, services: Sequence[Service] | None = None) -> typer.Typer:
    """The command; with `only`, just that part (services are imported only for a part
    that serves them, or a service's own group). `services`: the registered ones."""
    app = typer.Typer(
        name="netfate",
        help="Personal network functions at the network edge.",
        no_args_is_help=True,
        add_completion=False,
    )

    @app.callback()
    def root() -> None:
        """Personal network functions at the network edge."""

    # (With one command only, typer would make it the root and refuse its name.)
    parts = dict(PARTS)
    if only is not None and only in parts:
        parts = {only: parts[only]}
    needed = only is None or only not in PARTS or parts[only].wired
    if services is None:
        services = _registered() if needed else ()
    if only is None or only not in PARTS:
        parts |= {svc.name: Part(svc.cli, "group") for svc in services if svc.cli}
        if only is not None and only in parts:
            parts = {only: parts[only]}
    merged: set[str] = set()
    for name, part in parts.items():
        target: Any = load(part.spec)
        if part.wired:
            target = target(services)
        if part.kind == "command":
            app.command(name=name)(target)
        elif part.kind == "bench":
            ctx = {"allow_extra_args": True, "ignore_unknown_options": True}
            app.command(name=name, context_settings=ctx)(target)
        elif part.kind == "group":
            app.add_typer(target, name=name)
        elif part.spec not in merged:
            merged.add(part.spec)
            app.add_typer(target)
    return app


def _registered() -> tuple[Service, ...]:
    from netfate.services import registered

    return registered()


def main() -> None:
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    build(first)()
