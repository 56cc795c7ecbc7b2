"""The CLI's way to the orchestrator: find it, call it, turn errors into one line.

Where the API is, in order: `--api URL`, the NETFATE_API environment variable, the
one testbed run on this machine (its state journal records the URL), then
http://127.0.0.1:8080. An https:// orchestrator's certificate is checked against
the CA in NETFATE_CA if set (else the system's trust).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import typer

from netfate.clihelp import client_tls

DEFAULT_API = "http://127.0.0.1:8080"


def find_api(explicit: str | None = None) -> str:
    if explicit:
        return explicit.rstrip("/")
    env = os.environ.get("NETFATE_API")
    if env:
        return env.rstrip("/")
    try:
        from netfate.testbed.state import RunState, list_runs

        urls = [u for p in list_runs() if (u := RunState.load(p).api_url)]
    except Exception:  # no readable run: fall back to the default
        urls = []
    if len(urls) == 1:
        return urls[0].rstrip("/")
    return DEFAULT_API


def call(api: str | None, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    base = find_api(api)
    url = f"{base}/api/v1{path}"
    try:
        r = httpx.request(method, url, json=body, timeout=timeout, verify=client_tls())
    except httpx.HTTPError as e:
        raise typer.Exit(_fail(f"cannot reach the orchestrator at {base}: {e}")) from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        if isinstance(detail, list):  # FastAPI validation errors: say which field
            detail = "; ".join(
                f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
            )
        raise typer.Exit(_fail(f"{r.status_code}: {detail}"))
    return r.json() if r.content else None


def _fail(message: str) -> int:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return 1


def dump(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))
