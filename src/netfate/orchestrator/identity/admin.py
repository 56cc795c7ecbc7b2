"""`netfate admin ...`: on the orchestrator's host, against its database (no API, no
sign-in: whoever can write the database is its administrator already).

    netfate admin create-operator NAME [--database-url URL] [--password-stdin]

The database is brought to the current schema first (every registered service's
branch too: the `netfate` command hands them in, as to the orchestrator). A
password is made and shown once unless one is read from standard input. A
running orchestrator sees the new account at its next sign-in.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Annotated

import typer

from netfate.contract import Role, Service
from netfate.orchestrator.identity import accounts
from netfate.store.db import Database, DatabaseURLError


def command(services: Sequence[Service]) -> typer.Typer:
    app = typer.Typer(help="Administration on the orchestrator's host.", no_args_is_help=True)

    @app.command("create-operator")
    def create_operator(
        name: Annotated[str, typer.Argument(help="The operator's account name")],
        database_url: Annotated[
            str, typer.Option(help="The orchestrator's database (as it was started with)")
        ] = "sqlite:///netfate.db",
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the password from stdin")
        ] = False,
    ) -> None:
        """Make an operator account in the orchestrator's database."""
        password = sys.stdin.readline().rstrip("\n") if password_stdin else None
        try:
            db = Database(database_url)
        except DatabaseURLError as e:
            raise typer.BadParameter(str(e), param_hint="--database-url") from None
        try:
            db.migrate([s.migrations for s in services if s.migrations is not None])
            with db.session() as s:
                acct, made = accounts.create(s, name, Role.OPERATOR, password, time.time())
        except accounts.AccountError as e:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        finally:
            db.dispose()
        typer.echo(f"made operator {acct.name}")
        if made is not None:
            typer.echo(f"password (shown once): {made}")

    return app
