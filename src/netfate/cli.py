"""The `netfate` command: one entry point, one sub-command group per part.

Each part owns its own typer app in its package; this module only mounts them.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="netfate",
    help="Personal network functions at the network edge.",
    no_args_is_help=True,
    add_completion=False,
)


from netfate.agent.cli import agent  # noqa: E402
from netfate.orchestrator.cli import orchestrator  # noqa: E402
from netfate.testbed.cli import app as testbed_app  # noqa: E402

app.command()(orchestrator)
app.command()(agent)
app.add_typer(testbed_app, name="testbed")
app.add_typer(__import__("netfate.orchestrator.sdn.cli", fromlist=["app"]).app)


def main() -> None:
    app()
