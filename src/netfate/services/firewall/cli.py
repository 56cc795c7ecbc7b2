"""`netfate firewall ...`: the NFVI tables, users, rule sets and the RADIUS server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from netfate.apiclient import call

app = typer.Typer(help="NetFATE: users, personal firewall rules, NFVI tables, RADIUS.")
Api = Annotated[str | None, typer.Option("--api", help="Orchestrator URL")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    typer.echo("  ".join(c.upper().ljust(width[c]) for c in cols))
    for r in rows:
        typer.echo("  ".join(str(r.get(c, "")).ljust(width[c]) for c in cols))


@app.command()
def tables(api: Api = None, as_json: Json = False) -> None:
    """The paper's Tables I-III: users, network functions, forwarding rules."""
    t = call(api, "GET", "/firewall/tables")
    if as_json:
        typer.echo(json.dumps(t, indent=2))
        return
    typer.echo("Table I - users")
    _table(t["users"], ["name", "functions", "status", "access_node", "ip", "last_packet_at"])
    typer.echo("\nTable II - network functions")
    _table(t["functions"], ["name", "instance", "active", "node", "users", "detail"])
    typer.echo("\nTable III - forwarding rules")
    _table(t["forwarding"], ["user", "mac", "ip", "function_mac", "node", "steering"])


@app.command("add-user")
def add_user(
    name: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    host: Annotated[str | None, typer.Option(help="Topology host of the user")] = None,
    ip: Annotated[str | None, typer.Option(help="The user's address")] = None,
    idle_timeout: Annotated[int, typer.Option(help="Seconds without a packet")] = 60,
    api: Api = None,
) -> None:
    """Register a user who requires a personal firewall."""
    body = {
        "name": name,
        "password": password,
        "host": host,
        "ip": ip,
        "idle_timeout": idle_timeout,
    }
    typer.echo(json.dumps(call(api, "POST", "/firewall/users", body), indent=2))


@app.command()
def users(api: Api = None) -> None:
    _table(
        call(api, "GET", "/firewall/users"),
        ["name", "status", "access_node", "ip", "rules_version", "idle_timeout"],
    )


@app.command()
def rules(
    user: str,
    set_file: Annotated[
        Path | None, typer.Option("--set", help="Replace with this JSON file ('-': stdin)")
    ] = None,
    api: Api = None,
) -> None:
    """Show a user's rule set, or replace it whole (refused whole if invalid)."""
    if set_file is None:
        typer.echo(json.dumps(call(api, "GET", f"/firewall/users/{user}/rules"), indent=2))
        return
    text = typer.get_text_stream("stdin").read() if str(set_file) == "-" else set_file.read_text()
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise typer.BadParameter(f"not JSON: {e}") from None
    typer.echo(json.dumps(call(api, "PUT", f"/firewall/users/{user}/rules", doc), indent=2))


@app.command()
def logout(user: str, api: Api = None) -> None:
    """Log a user out: their firewall is released."""
    typer.echo(json.dumps(call(api, "POST", f"/firewall/users/{user}/logout"), indent=2))


@app.command("add-client")
def add_client(
    address: str,
    secret: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    name: str = "",
    api: Api = None,
) -> None:
    """Allow a NAS (address or subnet) with its shared secret."""
    body = {"address": address, "secret": secret, "name": name}
    typer.echo(json.dumps(call(api, "POST", "/firewall/radius/clients", body)))


@app.command()
def radius(api: Api = None) -> None:
    """Listeners, counters and recent drops of the embedded RADIUS server."""
    typer.echo(json.dumps(call(api, "GET", "/firewall/radius/status"), indent=2))
