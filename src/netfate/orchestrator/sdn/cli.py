"""`netfate controller` and `netfate flow add|list|delete|show`.

Mounted into the root CLI with `app.add_typer(sdn_cli.app)` (its commands merge
into the top level).
"""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from netfate.apiclient import auth_headers
from netfate.clihelp import CaOption, client_tls, read_token

app = typer.Typer(add_completion=False)
flow = typer.Typer(help="SDN intents and flow tables.", no_args_is_help=True)
add = typer.Typer(help="Add an intent.", no_args_is_help=True)
flow.add_typer(add, name="add")
app.add_typer(flow, name="flow")

DEFAULT_ORCH = os.environ.get("NETFATE_ORCHESTRATOR", "http://127.0.0.1:8080")
Orch = Annotated[
    str,
    typer.Option("--orchestrator", "-o", envvar="NETFATE_ORCHESTRATOR", help="Orchestrator URL."),
]
IdOpt = Annotated[str | None, typer.Option("--id", help="Intent id (default: generated).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command()
def controller(
    orchestrator: Orch = DEFAULT_ORCH,
    listen: Annotated[
        str, typer.Option(help="HOST:PORT for switches to connect to.")
    ] = "127.0.0.1:6653",
    netns: Annotated[
        str | None, typer.Option(help="Open the listening socket inside this namespace.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    metrics: Annotated[
        str | None,
        typer.Option(help="Serve Prometheus metrics on this loopback HOST:PORT (PORT 0: any)"),
    ] = None,
    ca: CaOption = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the controller's token (from the operator: `netfate accounts "
            "controller-token`); or set NETFATE_TOKEN"
        ),
    ] = None,
    ofp_cert: Annotated[
        Path | None,
        typer.Option(help="OpenFlow over TLS: the controller's certificate (PEM, serverAuth)"),
    ] = None,
    ofp_key: Annotated[
        Path | None, typer.Option(help="OpenFlow over TLS: the key of --ofp-cert (PEM)")
    ] = None,
    ofp_ca: Annotated[
        Path | None,
        typer.Option(
            help="OpenFlow over TLS: switches must show a certificate from this CA "
            "(clientAuth); plain-TCP switches are refused"
        ),
    ] = None,
) -> None:
    """Run the OpenFlow 1.3 controller (os-ken) in this process, until killed."""
    from netfate.clihelp import client_tls
    from netfate.metrics.exposition import check_loopback
    from netfate.orchestrator.sdn.process import parse_listen, run

    try:
        parse_listen(listen)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    at = None
    if metrics is not None:
        try:
            host, port = parse_listen(metrics)
            at = (check_loopback(host), port)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--metrics") from None
    client_tls(ca)  # a CA file that cannot be read is said here, before os-ken starts
    ofp_tls = _ofp_tls(ofp_cert, ofp_key, ofp_ca)
    run(orchestrator, listen, netns, verbose, metrics=at, ca=ca, token=read_token(token_file),
        ofp_tls=ofp_tls)  # fmt: skip


def _ofp_tls(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext | None:
    """All three of --ofp-cert/--ofp-key/--ofp-ca, or none; files checked here."""
    from netfate.orchestrator.sdn.tls import server_context

    given = [cert is not None, key is not None, ca is not None]
    if not any(given):
        return None
    if cert is None or key is None or ca is None:
        raise typer.BadParameter("give --ofp-cert, --ofp-key and --ofp-ca together",
                                 param_hint="--ofp-cert")  # fmt: skip
    try:
        return server_context(cert, key, ca)
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"cannot load the OpenFlow TLS files: {e}",
                                 param_hint="--ofp-cert") from None  # fmt: skip


def _call(method: str, orchestrator: str, path: str, body: Any = None) -> Any:
    url = f"{orchestrator.rstrip('/')}/api/v1{path}"
    try:
        r = httpx.request(method, url, json=body, timeout=10.0, verify=client_tls(),
                          headers=auth_headers(orchestrator))  # fmt: skip
    except httpx.HTTPError as e:
        typer.echo(f"error: cannot reach the orchestrator at {orchestrator}: {e}", err=True)
        raise typer.Exit(2) from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        typer.echo(f"error ({r.status_code}): {detail}", err=True)
        raise typer.Exit(1)
    return r.json()


def _post(orchestrator: str, body: dict[str, Any], as_json: bool) -> None:
    got = _call("POST", orchestrator, "/intents", body)
    if as_json:
        typer.echo(json.dumps(got, indent=2))
        return
    reason = f" ({got['reason']})" if got.get("reason") else ""
    typer.echo(f"{got['intent']['id']}: {got['state']}, {got['flows']} flows{reason}")


def _with_id(body: dict[str, Any], intent_id: str | None) -> dict[str, Any]:
    return {**body, "id": intent_id} if intent_id else body


@add.command("connectivity")
def add_connectivity(
    a: Annotated[str, typer.Argument(help="host:NAME | instance:ID | subnet:CIDR@NODE")],
    b: Annotated[str, typer.Argument(help="host:NAME | instance:ID | subnet:CIDR@NODE")],
    intent_id: IdOpt = None,
    orchestrator: Orch = DEFAULT_ORCH,
    as_json: JsonOpt = False,
) -> None:
    """A and B may reach each other, both directions."""
    _post(orchestrator, _with_id({"kind": "connectivity", "a": a, "b": b}, intent_id), as_json)


@add.command("steering")
def add_steering(
    host: Annotated[str, typer.Argument(help="Host name whose traffic is steered.")],
    chain: Annotated[str, typer.Option(help="Instance ids in order, comma-separated.")],
    to: Annotated[str, typer.Option(help="Destination: host:NAME or instance:ID.")],
    symmetric: Annotated[bool, typer.Option(help="Replies cross the chain too.")] = True,
    intent_id: IdOpt = None,
    orchestrator: Orch = DEFAULT_ORCH,
    as_json: JsonOpt = False,
) -> None:
    """HOST's traffic to TO crosses the instances of CHAIN in order."""
    body = {
        "kind": "steering",
        "host": host,
        "chain": [c for c in chain.split(",") if c],
        "to": to,
        "symmetric": symmetric,
    }
    _post(orchestrator, _with_id(body, intent_id), as_json)


@add.command("tunnel")
def add_tunnel(
    a: Annotated[str, typer.Argument()],
    b: Annotated[str, typer.Argument()],
    protocol: Annotated[str, typer.Option(help="tcp, udp or icmp")] = "tcp",
    port: Annotated[int | None, typer.Option(help="B's port (tcp/udp).")] = None,
    intent_id: IdOpt = None,
    orchestrator: Orch = DEFAULT_ORCH,
    as_json: JsonOpt = False,
) -> None:
    """A may reach B on PROTOCOL/PORT and nothing else."""
    body: dict[str, Any] = {"kind": "tunnel", "a": a, "b": b, "protocol": protocol}
    if port is not None:
        body["port"] = port
    _post(orchestrator, _with_id(body, intent_id), as_json)


@add.command("replication")
def add_replication(
    source: Annotated[str, typer.Argument(help="host:NAME or instance:ID sending the flow")],
    port: Annotated[int, typer.Option(help="Destination port of the flow.")],
    target: Annotated[list[str], typer.Option(help="A copy goes here (repeat).")],
    protocol: Annotated[str, typer.Option()] = "udp",
    at: Annotated[str | None, typer.Option(help="Node where copies are made.")] = None,
    dst_ip: Annotated[str | None, typer.Option(help="Only this destination address.")] = None,
    intent_id: IdOpt = None,
    orchestrator: Orch = DEFAULT_ORCH,
    as_json: JsonOpt = False,
) -> None:
    """Copy SOURCE's flow to every TARGET (an OpenFlow group of type ALL)."""
    body: dict[str, Any] = {
        "kind": "replication",
        "source": source,
        "protocol": protocol,
        "port": port,
        "targets": target,
    }
    if at:
        body["at"] = at
    if dst_ip:
        body["dst_ip"] = dst_ip
    _post(orchestrator, _with_id(body, intent_id), as_json)


@flow.command("fabric")
def fabric(
    orchestrator: Orch = DEFAULT_ORCH,
    instances: Annotated[bool, typer.Option(help="Give running instances their gateway.")] = True,
) -> None:
    """Add the base connectivity of the topology (hosts and gateways, node transit, LANs)."""
    got = _call("POST", orchestrator, f"/sdn/fabric?instances={str(instances).lower()}")
    typer.echo(f"added {len(got['added'])} intents, kept {len(got['kept'])}")
    for iid, why in got["refused"].items():
        typer.echo(f"refused {iid}: {why}", err=True)


@flow.command("list")
def list_(orchestrator: Orch = DEFAULT_ORCH, as_json: JsonOpt = False) -> None:
    """List intents with their state and flow counts."""
    got = _call("GET", orchestrator, "/intents")
    if as_json:
        typer.echo(json.dumps(got, indent=2))
        return
    for i in got:
        spec = {k: v for k, v in i["intent"].items() if k not in ("id", "kind")}
        reason = f"  ({i['reason']})" if i.get("reason") else ""
        typer.echo(
            f"{i['intent']['id']:<24} {i['intent']['kind']:<12} {i['state']:<8} "
            f"{i['flows']:>4} flows  {json.dumps(spec)}{reason}"
        )


@flow.command("delete")
def delete(
    intent_id: Annotated[str, typer.Argument(help="Intent id.")],
    orchestrator: Orch = DEFAULT_ORCH,
) -> None:
    """Delete an intent; the controller removes exactly its flows."""
    _call("DELETE", orchestrator, f"/intents/{intent_id}")
    typer.echo(f"deleted {intent_id}")


@flow.command("show")
def show(
    node: Annotated[str, typer.Argument(help="Node name.")],
    orchestrator: Orch = DEFAULT_ORCH,
    as_json: JsonOpt = False,
) -> None:
    """A node's flow table with packet and byte counters (as last read by the controller)."""
    got = _call("GET", orchestrator, f"/nodes/{node}/flows")
    if as_json:
        typer.echo(json.dumps(got, indent=2))
        return
    if got.get("at") is None:
        typer.echo(f"{node}: no flow table read yet (is the controller running?)")
        return
    typer.echo(f"{node} (dpid {got['dpid']}), read {got['age_s']} s ago")
    for f in sorted(got["flows"], key=lambda f: -int(f["priority"])):
        match = ",".join(f"{k}={v}" for k, v in f["match"].items()) or "*"
        typer.echo(
            f"  prio={f['priority']:<4} cookie={f['cookie']} pkts={f['packets']:<8} "
            f"bytes={f['bytes']:<10} {match} -> {f['actions']}"
        )
