"""`netfate sharing ...`: Personal Networks, their devices and device shares, through the API.

netfate sharing pn create alice@example.org cpe1 [--vhg]
netfate sharing pn list | pn show EMAIL | pn devices EMAIL
netfate sharing pn declare EMAIL NAME IP [--kind vstb]
netfate sharing invite --by EMAIL [--ttl-s S] | invitations EMAIL
netfate sharing share OWNER DEVICE RECIPIENT [--http-port P ...]
netfate sharing list [--pn EMAIL] | show ID
netfate sharing accept ID --by EMAIL | decline ID --by EMAIL | revoke ID --by EMAIL
netfate sharing gateway EMAIL [show]
netfate sharing gateway EMAIL set [--dhcp FIRST-LAST] [--lease-seconds S]
    [--forward tcp/8080=192.168.1.20:80 ...] [--allow udp/9001[=IP] ...] [--no-forwards]
    [--no-allow]      (a part left out keeps what it was)
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

import typer

from netfate.apiclient import call, dump

from .gateway import rule_spec, rule_text

app = typer.Typer(
    name="sharing", help="Personal Networks and smart-device sharing.", no_args_is_help=True
)
pn_app = typer.Typer(
    help="Personal Networks (id: the owner's account name, e.g. an email).", no_args_is_help=True
)
app.add_typer(pn_app, name="pn")

Api = Annotated[str | None, typer.Option("--api", help="Orchestrator URL")]
By = Annotated[str, typer.Option("--by", help="The PN owner acting (email)")]
HTTP_PORT = ("Proxy this port from the start (repeatable); without it the ports the device "
             "announces are learned")  # fmt: skip


def _ports(p: dict[str, list[int]] | None) -> str:
    """`ports 8200 (set), 49152 (learned)`: what VP1's ALG proxies, and why."""
    p = p or {}
    set_ = set(p.get("configured", []))
    learned = [x for x in p.get("learned", []) if x not in set_]
    shown = [f"{x} (set)" for x in sorted(set_)] + [f"{x} (learned)" for x in learned]
    return f"; ports {', '.join(shown)}" if shown else ""


def _share_line(s: dict[str, Any]) -> str:
    where = f" -> {s['address_in_recipient_pn']}" if s.get("address_in_recipient_pn") else ""
    return (
        f"{s['id']:>4}  {s['state']:<9}  {s['owner']} shares {s['device']} "
        f"({s['device_ip']}{where}) with {s['recipient']}{_ports(s.get('ports'))}"
    )


@pn_app.command("create")
def pn_create(
    email: str,
    node: str,
    subnet: Annotated[str | None, typer.Option(help="Which LAN of the node")] = None,
    vhg: Annotated[bool, typer.Option(help="Launch its vHG (DHCP, NAT, firewall)")] = False,
    api: Api = None,
) -> None:
    """Create a PN on an edge node's LAN."""
    body = {"email": email, "node": node, "subnet": subnet, "vhg": vhg}
    dump(call(api, "POST", "/sharing/pns", body))


@pn_app.command("list")
def pn_list(api: Api = None) -> None:
    for pn in call(api, "GET", "/sharing/pns"):
        typer.echo(f"{pn['email']:<32} {pn['node']:<10} {pn['subnet']:<18} "
                   f"{len(pn['devices'])} devices")  # fmt: skip


@pn_app.command("show")
def pn_show(email: str, api: Api = None) -> None:
    dump(call(api, "GET", f"/sharing/pns/{email}"))


@pn_app.command("devices")
def pn_devices(email: str, api: Api = None) -> None:
    """The PN's device inventory: topology hosts, declared virtual devices, vHG reports."""
    for d in call(api, "GET", f"/sharing/pns/{email}/devices"):
        typer.echo(f"{d['name']:<20} {d['ip']:<16} {d['kind']:<10} {d['source']}")


@pn_app.command("declare")
def pn_declare(
    email: str,
    name: str,
    ip: str,
    kind: Annotated[str, typer.Option(help="vstb, vnas, camera...")] = "virtual",
    api: Api = None,
) -> None:
    """Declare a virtual device of the PN."""
    dump(call(api, "POST", f"/sharing/pns/{email}/devices", {"name": name, "ip": ip, "kind": kind}))


@app.command("invite")
def invite(
    by: By,
    ttl_s: Annotated[float, typer.Option(help="How long the code can be used (seconds)")] = (
        7 * 86400.0
    ),
    api: Api = None,
) -> None:
    """A code to give someone who will share a device with your PN (used once)."""
    inv = call(api, "POST", "/sharing/invitations", {"by": by, "ttl_s": ttl_s})
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(inv["expires_at"]))
    typer.echo(f"{inv['code']}  (for {inv['pn']}, until {until}; "
               f"they run: netfate sharing share THEIR-EMAIL DEVICE {inv['code']})")  # fmt: skip


@app.command("invitations")
def invitations(email: str, api: Api = None) -> None:
    """The PN's invitation codes and what became of them."""
    for inv in call(api, "GET", f"/sharing/invitations?pn={quote(email)}"):
        used = f" share {inv['share']}" if inv["share"] else ""
        typer.echo(f"{inv['code']}  {inv['state']:<7}{used}")


@app.command("share")
def share(
    owner: str,
    device: str,
    recipient: Annotated[str, typer.Argument(help="The PN's id (email) or an invitation code")],
    http_port: Annotated[list[int] | None, typer.Option("--http-port", help=HTTP_PORT)] = None,
    api: Api = None,
) -> None:
    """Ask to share OWNER's DEVICE (name or address) with RECIPIENT's PN."""
    s = call(api, "POST", "/sharing/shares", {"owner": owner, "device": device,
                                               "recipient": recipient,
                                               "http_ports": http_port or []})  # fmt: skip
    typer.echo(_share_line(s))


@app.command("list")
def list_(
    pn: Annotated[str | None, typer.Option(help="Only this PN's shares")] = None, api: Api = None
) -> None:
    path = "/sharing/shares" + (f"?pn={quote(pn)}" if pn else "")
    for s in call(api, "GET", path):
        typer.echo(_share_line(s))


@app.command("show")
def show(sid: int, api: Api = None) -> None:
    dump(call(api, "GET", f"/sharing/shares/{sid}"))


@app.command("accept")
def accept(
    sid: int,
    by: By,
    wait: Annotated[bool, typer.Option(help="Wait until it is active")] = True,
    timeout: float = 30.0,
    api: Api = None,
) -> None:
    """Accept a share (recipient only): the VPs are launched."""
    s = call(api, "POST", f"/sharing/shares/{sid}/accept", {"by": by})
    deadline = time.monotonic() + timeout
    while wait and s["state"] == "accepted" and time.monotonic() < deadline:
        time.sleep(0.1)
        s = call(api, "GET", f"/sharing/shares/{sid}")
    typer.echo(_share_line(s))
    if wait and s["state"] != "active":
        raise typer.Exit(1)


@app.command("decline")
def decline(sid: int, by: By, api: Api = None) -> None:
    typer.echo(_share_line(call(api, "POST", f"/sharing/shares/{sid}/decline", {"by": by})))


@app.command("revoke")
def revoke(sid: int, by: By, api: Api = None) -> None:
    """Revoke a share (either owner): VPs, aliases, overlay and rules are removed."""
    typer.echo(_share_line(call(api, "POST", f"/sharing/shares/{sid}/revoke", {"by": by})))


def _static_spec(text: str) -> dict[str, Any]:
    """A static lease as typed: ``02:00:00:00:00:07=192.168.1.7[/nas]`` (the API checks
    the values)."""
    mac, sep, rest = text.strip().partition("=")
    ip, _, name = rest.partition("/")
    if not sep or not mac or not ip:
        raise ValueError(f"--static {text[:64]!r}: MAC=ADDRESS[/NAME]")
    return {"mac": mac, "ip": ip, **({"name": name} if name else {})}


@app.command("gateway")
def gateway(
    email: str,
    action: Annotated[str, typer.Argument(help="show, or set")] = "show",
    dhcp: Annotated[str | None, typer.Option(help="The DHCP pool, FIRST-LAST")] = None,
    lease_seconds: Annotated[int | None, typer.Option(help="The DHCP lease time")] = None,
    forward: Annotated[
        list[str] | None,
        typer.Option(help="PROTO/PORT=ADDRESS[:PORT], repeatable: the forwards from now on"),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="PROTO/PORT[=ADDRESS], repeatable: the allow rules from now on"),
    ] = None,
    static: Annotated[
        list[str] | None,
        typer.Option(help="MAC=ADDRESS[/NAME], repeatable: the static DHCP leases from now on"),
    ] = None,
    no_forwards: Annotated[bool, typer.Option(help="Remove every forward")] = False,
    no_allow: Annotated[bool, typer.Option(help="Remove every allow rule")] = False,
    no_static: Annotated[bool, typer.Option(help="Remove every static lease")] = False,
    api: Api = None,
) -> None:
    """A PN's gateway settings (LAN, DHCP, port forwards, firewall): show or set them."""
    path = f"/sharing/pns/{quote(email, safe='@')}/gateway"
    if action == "show":
        got = call(api, "GET", path)
    elif action == "set":
        body: dict[str, Any] = {}
        try:
            if dhcp is not None or lease_seconds is not None:
                cur = call(api, "GET", path)["dhcp"]
                first, sep, last = (dhcp or "").partition("-")
                if dhcp is not None and not sep:
                    raise ValueError(f"--dhcp {dhcp!r}: FIRST-LAST")
                body["dhcp"] = {"first": first if sep else cur["first"],
                                "last": last if sep else cur["last"],
                                "lease_seconds": lease_seconds or cur["lease_seconds"]}  # fmt: skip
            if forward or no_forwards:
                body["forwards"] = [rule_spec(f, forward=True) for f in forward or []]
            if allow or no_allow:
                body["allow"] = [rule_spec(a, forward=False) for a in allow or []]
            if static or no_static:
                body["static"] = [_static_spec(x) for x in static or []]
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        if not body:
            raise typer.BadParameter(
                "set what? (--dhcp, --lease-seconds, --static, --forward, --allow)"
            )
        got = call(api, "PUT", path, body)
    else:
        raise typer.BadParameter(f"{action!r}: show or set")
    vhg = got["vhg"]
    where = f"vHG {vhg['instance']} at {vhg['address']} ({vhg['state']})" if vhg else "no vHG"
    d = got["dhcp"]
    typer.echo(f"PN {got['pn']} on {got['node']}: LAN {got['lan']['subnet']} "
               f"(node {got['lan']['node_gateway']}), {where}")  # fmt: skip
    typer.echo(f"DHCP {d['first']}-{d['last']}, leases {d['lease_seconds']} s")
    for st in got.get("static", []):
        typer.echo(f"static {st['mac']}={st['ip']}" + (f"/{st['name']}" if st.get("name") else ""))
    for f in got["forwards"]:
        typer.echo(f"forward {rule_text(f, forward=True)}")
    for a in got["allow"]:
        typer.echo(f"allow {rule_text(a, forward=False)}")
