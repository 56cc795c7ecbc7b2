"""`netfate node list|power|predeploy`: the nodes, their power switch and their
pre-deploy budget and plan, through the API (operator only; nfv/power.py says what
off means, orchestrator/engine/predeploy.py how the plan is made)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from netfate.apiclient import call, dump

app = typer.Typer(
    help="List nodes; switch a node off (drained first) or on; pre-deploy budgets and plans.",
    no_args_is_help=True,
)

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


def _show_plan(p: dict[str, Any]) -> None:
    b = p.get("budget") or {}
    typer.echo(
        f"{p['node']}: {p.get('used_mb', 0):.3f} of {b.get('storage_mb', 0):g} MB, "
        f"{b.get('standbys', 0)} standby slot(s); planned {p.get('standbys') or {}}, "
        f"ready {p.get('standbys_ready') or {}}"
        + (f"; set by the {p['set_by']}" if p.get("set_by") else "")
    )
    for img in p.get("images") or []:
        mark = "kept   " if img["kept"] else "refused"
        typer.echo(f"  {mark} {img['function']}: {img['why']}")
    for why in p.get("standbys_why") or []:
        typer.echo(f"  standby {why}")


@app.command()
def predeploy(
    node: Annotated[str | None, typer.Argument(help="Node to set a budget for")] = None,
    storage_mb: Annotated[
        float | None, typer.Option("--storage-mb", help="Room for pre-deployed images (MB)")
    ] = None,
    standbys: Annotated[int | None, typer.Option(help="Warm standbys kept ready")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    api: Api = None,
) -> None:
    """The pre-deploy plan: per node with a budget, the function images kept or
    refused and the warm standbys planned and ready, each with its reason. With NODE
    and both --storage-mb and --standbys: set that node's budget first (0 and 0:
    none)."""
    if node is not None:
        if storage_mb is None or standbys is None:
            raise typer.BadParameter("give both --storage-mb and --standbys", param_hint="NODE")
        body = {"storage_mb": storage_mb, "standbys": standbys}
        call(api, "PUT", f"/nodes/{node}/predeploy", body)
    plans: dict[str, Any] = call(api, "GET", "/predeploy")
    if as_json:
        dump(plans)
        return
    if not plans:
        typer.echo("no node has a pre-deploy budget")
    for p in plans.values():
        _show_plan(p)
