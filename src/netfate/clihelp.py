"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path
from typing import Annotated

import typer

CA_ENV = "NETFATE_CA"
"""A PEM file of the CA that signed the orchestrator's certificate (clients trust it)."""
CaOption = Annotated[
    str | None,
    typer.Option(
        envvar=CA_ENV, help="PEM file of the CA that signed the orchestrator's certificate (https)"
    ),
]
"""A client command's --ca (clients check the orchestrator's certificate: client_tls)."""


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def client_tls(ca: str | None = None) -> ssl.SSLContext | bool:
    """How a client checks the orchestrator's certificate (https:// URLs): against the
    CA in `ca`, else in $NETFATE_CA, else the system's trust (True). Never unchecked."""
    path = ca or os.environ.get(CA_ENV) or None
    if path is None:
        return True
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as e:
        raise typer.BadParameter(f"CA file {path}: {e}", param_hint=f"--ca / {CA_ENV}") from None


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def read_token(token_file: Path | None) -> str | None:
    """The credential a process calls the orchestrator with: the content of
    `token_file` (a 0600 file: a token never goes on an argument list, which every
    user can read), else the NETFATE_TOKEN environment variable, else None."""
    if token_file is not None:
        try:
            text = token_file.read_text().strip()
        except OSError as e:
            hint = "--token-file"
            raise typer.BadParameter(f"cannot read {token_file}: {e}", param_hint=hint) from None
        if not text:
            raise typer.BadParameter(f"{token_file} is empty", param_hint="--token-file")
        return text
    return os.environ.get("NETFATE_TOKEN", "").strip() or None
