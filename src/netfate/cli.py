"""The `netfate` command: one entry point, one sub-command group per part.

Each part owns its typer command or app in its own package; this module only
mounts them. Mounting is lazy: `netfate agent` imports the agent and nothing
else, because a 100-node testbed starts 100 agents and every import of the
testbed builder, the SDN controller or the web code would cost each of them
start-up time on a 2-core machine. `netfate --help` still lists everything.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

# name -> ("module:attribute", kind): "command" is a function, "group" a Typer app.
# A group with name "" merges its commands into the root (the SDN app brings
# `controller` and `flow`).
PARTS: dict[str, tuple[str, str]] = {
    "orchestrator": ("netfate.orchestrator.cli:orchestrator", "command"),
    "agent": ("netfate.agent.cli:agent", "command"),
    "demo": ("netfate.demo.cli:demo", "command"),
    "vnf": ("netfate.orchestrator.vnf_cli:app", "group"),
    "testbed": ("netfate.testbed.cli:app", "group"),
    "controller": ("netfate.orchestrator.sdn.cli:app", "merge"),
    "flow": ("netfate.orchestrator.sdn.cli:app", "merge"),
    "bench": ("netfate.benchcli:bench", "bench"),
    "experiment": ("netfate.experiment.cli:app", "group"),
}


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _services() -> dict[str, tuple[str, str]]:
    from netfate import services

    found: dict[str, tuple[str, str]] = {}
    for name in services.names():
        spec = getattr(importlib.import_module(f"netfate.services.{name}"), "CLI", None)
        if isinstance(spec, str):
            found[name] = (spec, "group")
    return found


def build(only: str | None = None) -> typer.Typer:
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
    if only is None or only not in parts:
        parts |= _services()
    if only is not None and only in parts:
        parts = {only: parts[only]}
    merged: set[str] = set()
    for name, (spec, kind) in parts.items():
        if kind == "command":
            app.command(name=name)(_load(spec))
        elif kind == "bench":
            ctx = {"allow_extra_args": True, "ignore_unknown_options": True}
            app.command(name=name, context_settings=ctx)(_load(spec))
        elif kind == "group":
            app.add_typer(_load(spec), name=name)
        elif spec not in merged:
            merged.add(spec)
            app.add_typer(_load(spec))
    return app


def main() -> None:
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    build(first)()
