"""The CLI's way to the orchestrator: find it, sign in to it, call it, turn errors
into one line.

Where the API is, in order: `--api URL`, the NETFATE_API environment variable, the
one testbed run on this machine (its state journal records the URL), then
http://127.0.0.1:8080. An https:// orchestrator's certificate is checked against
the CA in NETFATE_CA if set (else the system's trust).

Which token a call carries, in order: the NETFATE_TOKEN environment variable, the
token `netfate login` kept for that URL (tokens.json in the user's config
directory, mode 0600), then the operator's token of the testbed run serving that
URL (a file of the run's, readable by root only, which made the run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import typer

from netfate.clihelp import client_tls
from netfate.host.private import read_private, write_private

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


def logins_file() -> Path:
    """Where `netfate login` keeps its tokens (one per API URL)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "netfate" / "tokens.json"


def _logins() -> dict[str, Any]:
    text = read_private(logins_file())
    try:
        got = json.loads(text) if text else {}
    except ValueError:
        return {}
    return got if isinstance(got, dict) else {}


def save_login(base: str, token: str, name: str, expires_at: float) -> Path:
    logins = _logins()
    logins[base.rstrip("/")] = {"token": token, "name": name, "expires_at": expires_at}
    return write_private(logins_file(), json.dumps(logins, indent=1, sort_keys=True))


def forget_login(base: str) -> bool:
    logins = _logins()
    if logins.pop(base.rstrip("/"), None) is None:
        return False
    write_private(logins_file(), json.dumps(logins, indent=1, sort_keys=True))
    return True


def find_token(base: str) -> str | None:
    """The token to call `base` with (see the module's docstring), or None."""
    env = os.environ.get("NETFATE_TOKEN")
    if env:
        return env.strip()
    entry = _logins().get(base.rstrip("/"))
    if isinstance(entry, dict) and isinstance(entry.get("token"), str):
        return str(entry["token"])
    try:
        from netfate.testbed.state import RunState, list_runs

        for prefix in list_runs():
            st = RunState.load(prefix)
            if st.api_url and st.api_url.rstrip("/") == base.rstrip("/"):
                return st.operator_token()
    except Exception:  # no readable run: no token from there
        return None
    return None


class SignedIn(httpx.Auth):
    """An httpx client's credentials: `token` (an operator's, say) for every request,
    but a node's agent's token for that node's routes (/api/v1/agents/{node}/...)
    when `agent(node)` gives one. Programs that play the agents (benchmarks, load
    tests) use it; an agent itself sends its own token only."""

    def __init__(
        self, token: str | None, agent: Callable[[str], str | None] = lambda _n: None
    ) -> None:
        self.token, self.agent = token, agent

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        parts = request.url.path.split("/")
        node = parts[4] if len(parts) > 4 and parts[1:4] == ["api", "v1", "agents"] else None
        token = (self.agent(node) if node else None) or self.token
        if token and "authorization" not in request.headers:
            request.headers["authorization"] = f"Bearer {token}"
        yield request


def auth_headers(base: str) -> dict[str, str]:
    token = find_token(base)
    return {"authorization": f"Bearer {token}"} if token else {}


def call(api: str | None, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    base = find_api(api)
    url = f"{base}/api/v1{path}"
    try:
        r = httpx.request(method, url, json=body, timeout=timeout, verify=client_tls(),
                          headers=auth_headers(base))  # fmt: skip
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
        if r.status_code == 401:
            detail = f"{detail} (sign in with `netfate login`, or set NETFATE_TOKEN)"
        raise typer.Exit(_fail(f"{r.status_code}: {detail}"))
    return r.json() if r.content else None


def _fail(message: str) -> int:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return 1


def dump(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))
