"""`netfate events`: the event log through the API, as the signed-in principal sees it
(an operator every event; a provider or a user its own).

    netfate events [--actor NAME] [--kind KIND] [--tail N] [--json]

`--actor NAME` lists what one account did: the state-changing requests it made
(RequestServed) and the events they caused.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from netfate.apiclient import call, dump


def events(
    actor: Annotated[str | None, typer.Option(help="Only what this account did")] = None,
    kind: Annotated[str | None, typer.Option(help="Only events of this kind")] = None,
    tail: Annotated[int, typer.Option(help="The newest N events", min=1, max=5000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    api: Annotated[str | None, typer.Option("--api", help="Orchestrator URL")] = None,
) -> None:
    """Show the newest events (each with the account that caused it)."""
    query: dict[str, Any] = {"tail": tail}
    if actor is not None:
        query["actor"] = actor
    rows = [e for e in call(api, "GET", f"/events?{urlencode(query)}")
            if kind is None or e["kind"] == kind]  # fmt: skip
    if as_json:
        dump(rows)
        return
    for e in rows:
        at = time.strftime("%H:%M:%S", time.localtime(e["at"]))
        data = " ".join(f"{k}={v}" for k, v in e["data"].items())
        typer.echo(f"{e['id']}\t{at}\t{e['actor'] or '-'}\t{e['kind']}\t{data}")
