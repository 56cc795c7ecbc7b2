"""The `netfate` command: one entry point, one sub-command group per part.

Each part owns its typer app or command in its own package; this module only
mounts them.
"""

from __future__ import annotations

import typer

from netfate.agent.cli import agent
from netfate.benchcli import bench
from netfate.demo.cli import demo
from netfate.orchestrator.cli import orchestrator
from netfate.orchestrator.sdn import cli as sdn_cli
from netfate.orchestrator.vnf_cli import app as vnf_app
from netfate.testbed.cli import app as testbed_app

app = typer.Typer(
    name="netfate",
    help="Personal network functions at the network edge.",
    no_args_is_help=True,
    add_completion=False,
)

app.command()(orchestrator)
app.command()(agent)
app.command()(demo)
app.add_typer(vnf_app, name="vnf")
app.add_typer(testbed_app, name="testbed")
app.add_typer(sdn_cli.app)  # `netfate controller` and `netfate flow ...`
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(bench)


def _mount_services() -> None:
    import importlib

    from netfate import services

    for name in services.names():
        spec = getattr(importlib.import_module(f"netfate.services.{name}"), "CLI", None)
        if isinstance(spec, str):
            module, _, attr = spec.partition(":")
            app.add_typer(getattr(importlib.import_module(module), attr), name=name)


_mount_services()


def main() -> None:
    app()
