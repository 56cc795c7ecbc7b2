"""`netfate vnf create|migrate|destroy|list|show`: VNF instances through the API."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from netfate.apiclient import call, dump
from netfate.model.lifecycle import MigrationPhase

app = typer.Typer(help="Create, migrate, destroy and list VNF instances.", no_args_is_help=True)

Api = Annotated[str | None, typer.Option("--api", help="Orchestrator URL (see docs)")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it is done")]


def _wait_for(api: str | None, iid: str, done: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        inst: dict[str, Any] = call(api, "GET", f"/instances/{iid}")
        if inst["state"] in done or inst["state"] == "failed":
            return inst
        if time.monotonic() > deadline:
            raise typer.Exit(_say(f"still {inst['state']} after {timeout:.0f} s", err=True))
        time.sleep(0.05)


def _say(msg: str, err: bool = False) -> int:
    typer.echo(msg, err=err)
    return 1 if err else 0


@app.command()
def create(
    descriptor: Annotated[str, typer.Argument(help="VNF descriptor, e.g. counter")],
    node: Annotated[str | None, typer.Option(help="Pin to this node")] = None,
    serves: Annotated[str | None, typer.Option(help="Host it serves (placement)")] = None,
    policy: Annotated[str, typer.Option(help="Placement policy")] = "nearest",
    name: Annotated[str | None, typer.Option(help="Instance name")] = None,
    config: Annotated[str | None, typer.Option(help="JSON object for the function")] = None,
    wait: Wait = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 30.0,
    api: Api = None,
) -> None:
    """Create an instance; placement picks the node unless --node is given."""
    body: dict[str, Any] = {"descriptor": descriptor, "policy": policy}
    for k, v in (("node", node), ("serves", serves), ("name", name)):
        if v is not None:
            body[k] = v
    if config is not None:
        try:
            body["config"] = json.loads(config)
        except ValueError as e:
            raise typer.BadParameter(f"not JSON: {e}", param_hint="--config") from None
    inst = call(api, "POST", "/instances", body)
    typer.echo(f"{inst['id']} placed on {inst['node']} ({inst['ip'] or 'no address'})")
    if wait:
        inst = _wait_for(api, inst["id"], {"running"}, timeout)
        typer.echo(f"{inst['id']} {inst['state']} {inst['detail']}".rstrip())
        if inst["state"] == "failed":
            raise typer.Exit(1)


@app.command()
def migrate(
    instance: Annotated[str, typer.Argument(help="Instance id")],
    node: Annotated[str, typer.Argument(help="Target node")],
    wait: Wait = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 30.0,
    api: Api = None,
) -> None:
    """Move an instance to NODE, make-before-break, with its state."""
    m = call(api, "POST", f"/instances/{instance}/migrate", {"node": node})
    typer.echo(f"migration {m['id']}: {m['source']} -> {m['target']}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while True:
        inst = call(api, "GET", f"/instances/{instance}")
        mig = next(x for x in inst["migrations"] if x["id"] == m["id"])
        if mig["phase"] in (MigrationPhase.DONE, MigrationPhase.FAILED):
            break
        if time.monotonic() > deadline:
            raise typer.Exit(_say(f"migration still {mig['phase']} after {timeout:.0f} s", True))
        time.sleep(0.05)
    if mig["phase"] == MigrationPhase.FAILED:
        raise typer.Exit(_say(f"migration failed: {mig['reason']}", err=True))
    if mig["downtime_ms"] is None:  # recorded on the source's word (agent/migration.py)
        typer.echo(f"{instance} now on {inst['node']}: {mig['reason']}")
        return
    typer.echo(
        f"{instance} now on {inst['node']}: downtime {mig['downtime_ms']:.2f} ms, "
        f"{mig['state_bytes']} bytes of state"
    )


@app.command()
def destroy(
    instance: Annotated[str, typer.Argument(help="Instance id")],
    wait: Wait = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 30.0,
    api: Api = None,
) -> None:
    """Stop an instance and remove everything of it."""
    call(api, "DELETE", f"/instances/{instance}")
    if wait:
        inst = _wait_for(api, instance, {"gone"}, timeout)
        typer.echo(f"{instance} {inst['state']}")
    else:
        typer.echo(f"{instance} stopping")


@app.command("list")
def list_(
    node: Annotated[str | None, typer.Option(help="Only on this node")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    api: Api = None,
) -> None:
    """List instances (not the gone ones)."""
    q = f"?node={node}" if node else ""
    rows = call(api, "GET", f"/instances{q}")
    if as_json:
        dump(rows)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("id", "name", "descriptor", "node", "state", "ip", "serves")
    for r in rows:
        # A provider's view has no node or address, only a location class.
        where = r.get("node") or (r.get("location") or {}).get("tier") or ""
        t.add_row(
            r["id"], r["name"], r["descriptor"], where, r["state"], r.get("ip") or "",
            r["serves"] or "",
        )  # fmt: skip
    Console().print(t)


@app.command()
def show(instance: Annotated[str, typer.Argument()], api: Api = None) -> None:
    """One instance with its transitions and migrations, as JSON."""
    dump(call(api, "GET", f"/instances/{instance}"))
