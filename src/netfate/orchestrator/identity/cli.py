"""`netfate login`, `netfate logout` and `netfate accounts ...`: signing in, and the
operator's accounts and credentials, through the API.

    netfate login [--name N]          asks the password; keeps the token (0600 file in the
                                      user's config directory) for that API URL
    netfate logout                    revokes it and forgets it
    netfate accounts me|list|create|disable|enable|reset|agent-token|controller-token

A token made for an agent or a controller is written to a file (`--out`, mode 0600)
or printed: hand it to the process as `--token-file` or NETFATE_TOKEN, never as an
argument. `netfate admin create-operator` (admin.py) works on the database itself,
on the orchestrator's host.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from netfate.apiclient import call, dump, find_api, forget_login, save_login
from netfate.host.private import write_private

Api = Annotated[str | None, typer.Option("--api", help="Orchestrator URL (see docs)")]
Out = Annotated[
    Path | None, typer.Option("--out", help="Write the token to this file (0600), not stdout")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input")
]

accounts = typer.Typer(help="Accounts and credentials (the operator's).", no_args_is_help=True)


def _password(from_stdin: bool, prompt: str, confirm: bool = False) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    got: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return got


def login(
    name: Annotated[str | None, typer.Option(help="Account name (asked if omitted)")] = None,
    password_stdin: PasswordStdin = False,
    ttl: Annotated[float | None, typer.Option(help="Token lifetime in seconds")] = None,
    api: Api = None,
) -> None:
    """Sign in: the token is kept for this API URL (NETFATE_TOKEN overrides it)."""
    base = find_api(api)
    name = name or typer.prompt("name")
    body: dict[str, Any] = {"name": name, "password": _password(password_stdin, "password")}
    if ttl is not None:
        body["ttl_s"] = ttl
    got = call(base, "POST", "/auth/token", body)
    path = save_login(base, got["token"], name, got["expires_at"])
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(got["expires_at"]))
    typer.echo(f"signed in to {base} as {name} ({got['account']['role']}) until {until}; "
               f"token kept in {path}")  # fmt: skip


def logout(api: Api = None) -> None:
    """Revoke this API URL's kept token and forget it."""
    base = find_api(api)
    call(base, "DELETE", "/auth/token")
    forget_login(base)
    typer.echo(f"signed out of {base}")


@accounts.command()
def me(api: Api = None) -> None:
    """Who the token in use is."""
    dump(call(api, "GET", "/auth/me"))


@accounts.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False, api: Api = None
) -> None:
    """Every account (no passwords or tokens: none is ever shown again)."""
    rows = call(api, "GET", "/accounts")
    if as_json:
        dump(rows)
        return
    for a in rows:
        flags = " (disabled)" if a["disabled"] else ""
        node = f" node {a['node']}" if a["node"] else ""
        typer.echo(f"{a['name']}\t{a['role']}{node}{flags}")


@accounts.command()
def create(
    name: Annotated[str, typer.Argument(help="Account name (an email fits)")],
    role: Annotated[str, typer.Option(help="operator, provider or user")] = "user",
    password_stdin: PasswordStdin = False,
    api: Api = None,
) -> None:
    """Make an account; without --password-stdin a password is made and shown once."""
    body: dict[str, Any] = {"name": name, "role": role}
    if password_stdin:
        body["password"] = _password(True, "")
    got = call(api, "POST", "/accounts", body)
    typer.echo(f"made {got['role']} {got['name']}")
    if "password" in got:
        typer.echo(f"password (shown once): {got['password']}")


@accounts.command()
def disable(name: Annotated[str, typer.Argument()], api: Api = None) -> None:
    """Disable an account: its tokens stop working at once."""
    call(api, "PATCH", f"/accounts/{name}", {"disabled": True})
    typer.echo(f"{name} disabled")


@accounts.command()
def enable(name: Annotated[str, typer.Argument()], api: Api = None) -> None:
    """Enable an account again (its earlier tokens stay revoked)."""
    call(api, "PATCH", f"/accounts/{name}", {"disabled": False})
    typer.echo(f"{name} enabled")


@accounts.command()
def reset(
    name: Annotated[str, typer.Argument()], password_stdin: PasswordStdin = False, api: Api = None
) -> None:
    """A new password (made and shown once unless read from stdin); revokes its tokens."""
    body = {"password": _password(True, "")} if password_stdin else {}
    got = call(api, "POST", f"/accounts/{name}/password", body)
    typer.echo(f"{name}: new password set; its tokens are revoked")
    if "password" in got:
        typer.echo(f"password (shown once): {got['password']}")


def _token_out(got: dict[str, Any], out: Path | None) -> None:
    if out is None:
        typer.echo(got["token"])
        return
    write_private(out, got["token"] + "\n")
    typer.echo(f"token of {got['account']['name']} written to {out} (0600)", err=True)


@accounts.command("agent-token")
def agent_token(
    node: Annotated[str, typer.Argument(help="The node whose agent it is")],
    out: Out = None,
    api: Api = None,
) -> None:
    """A new token for NODE's agent (its earlier one is revoked): `netfate agent
    --token-file FILE`."""
    _token_out(call(api, "POST", "/accounts/agents", {"node": node}), out)


@accounts.command("controller-token")
def controller_token(
    name: Annotated[str, typer.Option(help="The controller's name")] = "sdn",
    out: Out = None,
    api: Api = None,
) -> None:
    """A new token for an SDN controller: `netfate controller --token-file FILE`."""
    _token_out(call(api, "POST", "/accounts/controllers", {"name": name}), out)
