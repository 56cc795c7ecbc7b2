"""`netfate orchestrator`: serve the REST API, the dashboard and the agents.

The `netfate` command (netfate/cli.py) hands in the registered services; this
module, like the rest of the core, names none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from netfate.clihelp import is_loopback, parse_hostport
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
        max_long_polls: Annotated[
            int | None,
            typer.Option(
                min=1,
                envvar="NETFATE_MAX_LONG_POLLS",
                help="Long-polls waiting at once, one per agent and controller; one more "
                "is answered 429 (default 256)",
            ),
        ] = None,
        keep_gone: Annotated[
            int | None,
            typer.Option(
                min=0,
                envvar="NETFATE_KEEP_GONE_INSTANCES",
                help="Gone instances kept as history, with their transitions and migrations "
                "(default 10000)",
            ),
        ] = None,
        keep_events: Annotated[
            int | None,
            typer.Option(
                min=0, envvar="NETFATE_KEEP_EVENTS", help="Events kept in the log (default 200000)"
            ),
        ] = None,
        history_prune: Annotated[
            float | None,
            typer.Option(
                min=0.1,
                envvar="NETFATE_HISTORY_PRUNE_S",
                help="Seconds between deletions of history beyond those bounds (default 60)",
            ),
        ] = None,
        prometheus: Annotated[
            str | None,
            typer.Option(
                envvar="NETFATE_PROMETHEUS",
                help="Prometheus server the placement engine reads time series from "
                "(http://HOST:PORT); without it the engine uses the agents' last samples",
            ),
        ] = None,
        tls_cert: Annotated[
            Path | None,
            typer.Option(help="Serve HTTPS with this certificate (PEM, chain first)", exists=True),
        ] = None,
        tls_key: Annotated[
            Path | None, typer.Option(help="The certificate's private key (PEM)", exists=True)
        ] = None,
        insecure: Annotated[
            bool,
            typer.Option(
                "--insecure",
                help="Serve plain HTTP on an address other than loopback (credentials and "
                "secrets then cross the network in the clear)",
            ),
        ] = False,
        log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
        allowed_host: Annotated[
            list[str] | None,
            typer.Option(
                help="A name clients reach the API by (repeatable); the Host header must "
                "be one of these, the listen address, 127.0.0.1 or localhost (DNS rebinding)"
            ),
        ] = None,
        operator_file: Annotated[
            Path | None,
            typer.Option(
                help="On a database without an operator, write the one made at start here "
                "(0600, JSON) instead of printing its password once"
            ),
        ] = None,
        door_secret_file: Annotated[
            Path | None,
            typer.Option(
                help="The front door's secret (a file, as `netfate frontdoor --secret-file`): "
                "requests carrying it are counted by the client address the door gives"
            ),
        ] = None,
        image_dir: Annotated[
            Path | None,
            typer.Option(
                help="Paths functions write as root (USB/IP storage images, pty links, streaming "
                "recording volumes) must lie below this directory (default /var/lib/netfate/images)"
            ),
        ] = None,
    ) -> None:
        """Run the orchestrator: REST API under /api/v1, metrics at /metrics, dashboard at /.

        Every route asks for credentials but health, sign-in and the pages. On a new
        database it makes the first operator, `admin`, with a random password shown
        once (or written to --operator-file); `netfate admin create-operator` makes
        one beforehand instead."""
        tls = check_tls(listen, tls_cert, tls_key, insecure)
        serve(
            services, listen, database_url, topology, heartbeat_timeout, migration_deadline,
            log_level, keep_gone=keep_gone, keep_events=keep_events, history_prune=history_prune,
            prometheus=prometheus, tls=tls, allowed_hosts=tuple(allowed_host or ()),
            operator_file=operator_file, door_secret=read_door_secret(door_secret_file),
            image_dir=image_dir, max_long_polls=max_long_polls,
        )  # fmt: skip

    return orchestrator


def read_door_secret(path: Path | None) -> str | None:
    """The secret in `path` (one line), or None without a path (BadParameter if unreadable
    or shorter than 16 characters)."""
    if path is None:
        return None
    try:
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise typer.BadParameter(f"cannot read {path}: {e}", param_hint="--door-secret-file") from e
    if len(secret) < 16:
        raise typer.BadParameter(
            f"{path}: the secret is shorter than 16 characters", param_hint="--door-secret-file"
        )
    return secret


def check_tls(
    listen: str, cert: Path | None, key: Path | None, insecure: bool
) -> tuple[Path, Path] | None:
    """The certificate and key to serve with, or None for plain HTTP, which is allowed
    on loopback only unless `insecure` says otherwise (BadParameter if not)."""
    if (cert is None) != (key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither")
    if cert is not None and key is not None:
        return cert, key
    host, _ = parse_hostport(listen)
    if not is_loopback(host) and not insecure:
        raise typer.BadParameter(
            f"{host} is not a loopback address: serve it with --tls-cert and --tls-key, or "
            "say --insecure to serve plain HTTP there anyway",
            param_hint="--listen",
        )
    return None


def serve(
    services: Sequence[Service],
    listen: str,
    database_url: str,
    topology: Path | None,
    heartbeat_timeout: float,
    migration_deadline: float,
    log_level: str,
    *,
    keep_gone: int | None = None,
    keep_events: int | None = None,
    history_prune: float | None = None,
    prometheus: str | None = None,
    tls: tuple[Path, Path] | None = None,
    allowed_hosts: tuple[str, ...] = (),
    operator_file: Path | None = None,
    door_secret: str | None = None,
    image_dir: Path | None = None,
    max_long_polls: int | None = None,
) -> None:
    """`tls`: (certificate, key) to serve HTTPS with (check_tls decides)."""
    import uvicorn

    from netfate.orchestrator.app import Settings, create_app
    from netfate.store.db import DatabaseURLError, normalise_url

    host, port = parse_hostport(listen)
    try:
        normalise_url(database_url)
    except DatabaseURLError as e:
        raise typer.BadParameter(str(e), param_hint="--database-url") from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    settings = Settings(
        database_url=database_url,
        topology=topology,
        heartbeat_timeout_s=heartbeat_timeout,
        migration_deadline_s=migration_deadline,
        prometheus_url=prometheus,
        allowed_hosts=(*Settings.allowed_hosts, host, *allowed_hosts),
        operator_file=operator_file,
        door_secret=door_secret,
        image_dir=image_dir or Settings.image_dir,
    )
    # History bounds: the Settings defaults unless given (nfv/history.py).
    if keep_gone is not None:
        settings = replace(settings, keep_gone_instances=keep_gone)
    if max_long_polls is not None:
        settings = replace(settings, max_long_polls=max_long_polls)
    if keep_events is not None:
        settings = replace(settings, keep_events=keep_events)
    if history_prune is not None:
        settings = replace(settings, history_prune_s=history_prune)
    app = create_app(settings, services=services)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
