"""`netfate fake ...` (the fake service's CLI group) and its experiment's command."""

from __future__ import annotations

import typer

app = typer.Typer(name="fake", help="The fake service.", no_args_is_help=True)


@app.command()
def hello() -> None:
    """Say hello."""
    typer.echo("hello from the fake service")


def experiment() -> None:
    """The fake experiment."""
    typer.echo("the fake experiment ran")
