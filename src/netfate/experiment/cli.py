"""`netfate experiment ...`: reproduce a seed's figures on the testbed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="experiment", help="Reproduce the seeds' figures on the testbed.", no_args_is_help=True
)


@app.callback()
def _main() -> None:
    """Experiments (each writes a table, JSON and PNG plots)."""


@app.command()
def hrh(
    out: Annotated[Path, typer.Option(help="Directory for hrh.md, hrh.json and the PNGs")] = Path(
        "experiment-hrh"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="4 MiB and 30 RTT samples per setting (~20 s)")
    ] = False,
    size_mib: Annotated[int | None, typer.Option(help="MiB written and read per setting")] = None,
    samples: Annotated[int | None, typer.Option(help="RTT samples per setting")] = None,
    plots: Annotated[bool, typer.Option(help="Write PNG plots (needs matplotlib)")] = True,
) -> None:
    """The HRH paper's Tables I and II: USB/IP throughput and serial RTT in four settings."""
    from dataclasses import replace

    from netfate.experiment.hrh import FULL, QUICK, run

    plan = QUICK if quick else FULL
    if size_mib is not None:
        plan = replace(plan, size=size_mib << 20)
    if samples is not None:
        plan = replace(plan, samples=samples)

    def say(msg: str) -> None:
        typer.echo(f"[{time.strftime('%H:%M:%S')}] {msg}")

    run(out, plan=plan, progress=say, plots=plots)
    typer.echo((out / "hrh.md").read_text())
