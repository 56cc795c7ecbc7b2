"""`netfate orchestrator`: serve the REST API, the dashboard and the agents.

The `netfate` command (netfate/cli.py) hands in the registered services; this
module, like the rest of the core, names none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer

from netfate.clihelp import parse_hostport
from netfate.contract import Service


def command(services: Sequence[Service]) -> Callable[..., None]:
    """The `netfate orchestrator` command, serving these services."""

    def orchestrator(
        listen: Annotated[str, typer.Option(help="HOST:PORT to serve on")] = "127.0.0.1:8080",
        database_url: Annotated[
            str, typer.Option(help="sqlite:///PATH (default) or postgresql://USER@HOST/DB")
        ] = "sqlite:///netfate.db",
        topology: Annotated[
            Path | None, typer.Option(help="Load this topology file at start", exists=True)
        ] = None,
        heartbeat_timeout: Annotated[
            float, typer.Option(help="Seconds without a report before a node is unreachable")
        ] = 3.0,
        migration_deadline: Annotated[
            float,
            typer.Option(help="Seconds a migration may take before it is rolled back", min=1.0),
        ] = 30.0,
        log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    ) -> None:
        """Run the orchestrator: REST API under /api/v1, dashboard at /."""
        serve(
            services, listen, database_url, topology, heartbeat_timeout, migration_deadline,
            log_level,
        )  # fmt: skip

    return orchestrator


def serve(
    services: Sequence[Service],
    listen: str,
    database_url: str,
    topology: Path | None,
    heartbeat_timeout: float,
    migration_deadline: float,
    log_level: str,
) -> None:
    import uvicorn

    from netfate.orchestrator.app import Settings, create_app
    from netfate.store.db import DatabaseURLError, normalise_url

    host, port = parse_hostport(listen)
    try:
        normalise_url(database_url)
    except DatabaseURLError as e:
        raise typer.BadParameter(str(e), param_hint="--database-url") from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    app = create_app(
        Settings(
            database_url=database_url,
            topology=topology,
            heartbeat_timeout_s=heartbeat_timeout,
            migration_deadline_s=migration_deadline,
        ),
        services=services,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
