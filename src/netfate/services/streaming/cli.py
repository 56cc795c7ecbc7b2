"""`netfate streaming ...`: the operator's settings of the live-streaming service."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from netfate.apiclient import call

app = typer.Typer(
    name="streaming", help="Live streaming: the operator's settings.", no_args_is_help=True
)


@app.callback()
def main() -> None:
    """Live streaming: the operator's settings (a group: `netfate streaming portals`,
    never one command standing for the group)."""


Api = Annotated[str | None, typer.Option("--api", help="Orchestrator URL")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _show(got: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(got, indent=2))
        return
    where = "every PE a host is attached to" if got["all"] else ", ".join(got["pes"]) or "none"
    typer.echo(f"portals at: {where} ({got['source']}); now at: {', '.join(got['pes_now']) or '-'}")
    for p in got["portals"]:
        dhcp = p.get("dhcp") or {}
        lease = f"DHCP {dhcp['range']} via {dhcp['router']}" if dhcp else "no DHCP yet"
        typer.echo(f"  {p['pe']}: {p['instance']} {p['state']} {p['address'] or '-'} ({lease})")


@app.command()
def portals(
    pes: Annotated[list[str] | None, typer.Argument(help="The PEs that keep a portal")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every PE a host is attached to")] = False,
    none: Annotated[bool, typer.Option("--none", help="No portal anywhere")] = False,
    api: Api = None,
    as_json: Json = False,
) -> None:
    """Show where the viewers' captive portals are kept, or set it (PEs, --all or
    --none): stored, the environment's default no longer read; the service's loop
    starts and releases the portals."""
    if none and (pes or all_):
        raise typer.BadParameter("--none with PEs or --all")
    if not pes and not all_ and not none:
        _show(call(api, "GET", "/streaming/portals"), as_json)
        return
    _show(call(api, "PUT", "/streaming/portals", {"pes": pes or [], "all": all_}), as_json)
