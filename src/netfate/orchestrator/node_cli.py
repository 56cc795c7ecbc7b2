"""`netfate node list|power`: the nodes and their power switch, through the API
(operator only; nfv/power.py says what off means)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from netfate.apiclient import call, dump

app = typer.Typer(help="List nodes; switch a node off (drained first) or on.", no_args_is_help=True)

Api = Annotated[str | None, typer.Option("--api", help="Orchestrator URL (see docs)")]


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    api: Api = None,
) -> None:
    """Nodes with their status (agent reporting) and power (on, draining, off)."""
    rows: list[dict[str, Any]] = call(api, "GET", "/nodes")
    if as_json:
        dump(rows)
        return
    for r in rows:
        why = f"  ({r['power_why']})" if r.get("power_why") else ""
        typer.echo(f"{r['name']:<16} {r['kind']:<6} {r['status']:<12} {r['power']}{why}")


@app.command()
def power(
    node: Annotated[str, typer.Argument(help="Node name")],
    state: Annotated[str, typer.Argument(help="on or off")],
    why: Annotated[str, typer.Option(help="Recorded with the change")] = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for off")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 60.0,
    api: Api = None,
) -> None:
    """Switch NODE off (its instances migrate away first; refused, with the reason,
    when it cannot be drained) or on (placement may use it again)."""
    if state not in ("on", "off"):
        raise typer.BadParameter("on or off", param_hint="STATE")
    r = call(api, "PUT", f"/nodes/{node}/power", {"state": state, "why": why})
    for iid, target in sorted(r.get("moves", {}).items()):
        typer.echo(f"{iid} migrating to {target}")
    deadline = time.monotonic() + timeout
    while wait and r["power"] == "draining":
        if time.monotonic() > deadline:
            typer.echo(f"{node} still draining after {timeout:.0f} s", err=True)
            raise typer.Exit(1)
        time.sleep(0.2)
        r = call(api, "GET", f"/nodes/{node}")
    typer.echo(f"{node} {r['power']}" + (f": {r['power_why']}" if r["power_why"] else ""))
    if state == "off" and r["power"] != "off" and wait:
        raise typer.Exit(1)  # the drain was given up (the reason is above)
