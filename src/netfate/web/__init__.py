"""The dashboard, served by the orchestrator (the services' own pages and panels
live in their folders and come through their contracts).

Layout:

    templates/dashboard.html   the dashboard (served at `/`, behind sign-in): the
                               operator's whole view, a provider's or a user's own
    templates/signin.html      the sign-in form (served by orchestrator/identity/pages.py)
    static/dashboard.css       its style (the services' pages use it too)
    static/dashboard.js        topology drawing, instances, nodes, live event feed
    static/session.js          who is signed in, and the sign-out button, on every page
    static/panels/*.js         the platform's extra panels, loaded after dashboard.js

Everything is plain HTML/CSS/JS with no build step and nothing fetched from the
internet: the page is served with a Content-Security-Policy that only allows this
origin, so a stray external URL or an injected inline script would not run anyway.

Adding a panel (a service does this without editing the core page):

1. A service names the script in its contract (`Service.panels`, files of its
   own `static/` folder, served at `/static/SERVICE/`); the platform's own panels
   are `static/panels/NAME.js`; anything else may call
   `register_panel("/path/to/script.js")` before the page is served.
2. In the script, use the browser-side registry that dashboard.js exposes:

       netfate.registerPanel({
         id: "firewall",                 // unique, used for the DOM id
         title: "Personal firewalls",
         roles: ["operator"],            // who sees it (all when absent); its
                                         // requests must be ones these roles may make
         kinds: ["FirewallRuleAdded"],  // event kinds the panel wants live
         mount(el, ctx) { ... },         // el: an empty <div> to fill (use ctx.h)
         onEvent(ev, ctx) { ... },       // each event of `kinds`, as it happens
         onRefresh(state, ctx) { ... },  // after each refresh of nodes/instances
         draw(layer, layout, ctx) { ... },  // paint on the topology (own SVG <g>)
       });
       netfate.describeEvent("FirewallRuleAdded", (d) => `rule ${d.rule} on ${d.instance}`);

   `ctx.h(tag, attrs, ...children)` builds elements (text children become text
   nodes, never markup), `ctx.api(path)` GETs JSON from `/api/v1`. Never assign
   API data to innerHTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
STATIC = HERE / "static"
PANELS_DIR = STATIC / "panels"
TEMPLATE = HERE / "templates" / "dashboard.html"
PANELS_MARKER = "<!-- panels -->"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
"""Only this origin: no CDN, no inline script, so injected markup cannot execute."""

_registered: list[str] = []


def _check_same_origin(script_url: str) -> None:
    if not script_url.startswith("/") or script_url.startswith("//"):
        raise ValueError(f"panel scripts must be same-origin paths, got {script_url!r}")


def register_panel(script_url: str) -> None:
    """Load this same-origin script on the dashboard, after the core (idempotent)."""
    _check_same_origin(script_url)
    if script_url not in _registered:
        _registered.append(script_url)


def panel_scripts(extra: Sequence[str] = ()) -> list[str]:
    """Scripts of extra panels: static/panels/*.js (sorted), then registered ones, then
    `extra` (the services' of this app)."""
    found = []
    if PANELS_DIR.is_dir():
        found = [f"/static/panels/{p.name}" for p in sorted(PANELS_DIR.glob("*.js"))]
    for u in [*_registered, *extra]:
        if u not in found:
            found.append(u)
    return found


def render_dashboard(extra: Sequence[str] = ()) -> str:
    tags = "\n".join(
        f'<script src="{html.escape(u, quote=True)}" defer></script>' for u in panel_scripts(extra)
    )
    return TEMPLATE.read_text(encoding="utf-8").replace(PANELS_MARKER, tags)


def mount(
    app: FastAPI, statics: Mapping[str, Path] | None = None, panels: Sequence[str] = ()
) -> None:
    """The dashboard at `/`, the core's files at `/static/`, and each service's
    `static/` folder at `/static/NAME/` (`statics`: NAME -> folder) with its
    `panels` (same-origin script paths) on the dashboard."""
    for url in panels:
        _check_same_origin(url)
    # Each service's folder is mounted first: the core's /static would answer its
    # paths with 404 before a later mount is tried.
    for name, folder in (statics or {}).items():
        app.mount(f"/static/{name}", StaticFiles(directory=folder), name=f"static-{name}")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    extra = tuple(panels)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(
            render_dashboard(extra),
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )
