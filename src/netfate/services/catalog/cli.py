"""`netfate catalog ...`: the catalog through the API.

netfate catalog where USER [--history N] [--json]
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer

from netfate.apiclient import call, dump

app = typer.Typer(
    name="catalog", help="The service catalog: where users are.", no_args_is_help=True
)

Api = Annotated[str | None, typer.Option("--api", help="Orchestrator URL")]


@app.callback()
def catalog() -> None:
    """The service catalog (a group: `where` is one of its commands, not the only one)."""


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def lines(pos: dict[str, Any], history: int) -> list[str]:
    """What `where` prints: now (and why), each source, the newest history entries."""
    now = pos.get("now")
    out = [
        f"{pos['user']} is at {now['node']} ({now['source']}, {_when(now['seen_at'])} UTC)"
        if now
        else f"{pos['user']}: not seen now"
    ]
    if now:
        out.append(f"  why: {now['why']}")
    for s in pos.get("sources", []):
        until = f", until {_when(s['until'])}" if s.get("until") is not None else ""
        detail = f" [{s['detail']}]" if s.get("detail") else ""
        out.append(f"  {s['source']:<9} {s['node']:<16} {_when(s['seen_at'])}{until}{detail}")
    if pos.get("history"):
        out.append("history (newest first):")
        for h in pos["history"][:history]:
            out.append(f"  {_when(h['seen_at'])}  {h['node']:<16} {h['source']}")
    for r in pos.get("refused", []):
        out.append(f"refused lease line {r['line']} of {r['instance']} at {r['node']}: "
                   f"{r['reason']}")  # fmt: skip
    return out


@app.command("where")
def where(
    user: str,
    history: Annotated[int, typer.Option(help="History entries shown", min=0)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="The API's answer as is")] = False,
    api: Api = None,
) -> None:
    """Where USER is now, what each source says, and where they were."""
    pos = call(api, "GET", f"/catalog/positions/{quote(user, safe='')}")
    if as_json:
        dump(pos)
        return
    for line in lines(pos, history):
        typer.echo(line)
