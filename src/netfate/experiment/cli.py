"""`netfate experiment NAME ...`: reproduce a seed's figures on the testbed.

Wiring, on the top floor: one command per experiment that the services the
`netfate` command hands in declare (their contracts' ``experiments``, aliases
included); each experiment's options are its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from netfate.contract import Service, load


def app(services: Sequence[Service]) -> typer.Typer:
    group = typer.Typer(
        name="experiment", help="Reproduce the seeds' figures on the testbed.", no_args_is_help=True
    )

    @group.callback()
    def _main() -> None:
        """Experiments (each writes a table, JSON and PNG plots)."""

    for svc in services:
        for exp in svc.experiments:
            fn = load(exp.command)
            group.command(name=exp.name)(fn)
            for alias in exp.aliases:
                group.command(name=alias, hidden=True)(fn)
    return group
