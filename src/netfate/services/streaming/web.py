"""The streaming service's two web apps and the few routes only they need.

    GET /app                       the user's app (Discover, Live, Record, MyShare, Calendar)
    GET /studio                    the provider's app (schedule, start/stop, acquirer, refusals)
    GET /app/hls.js                the player library, from the build's node_modules (hls.js
                                   from npm, pinned by web/package-lock.json; `make deps`)
    GET /app/manifest.webmanifest  the user's app as an installable web app
    GET /app/me                    who the page's user is (and their access PE)
    GET /app/recordings            MyShare: the user's recordings with their VoD playlists
    DELETE /app/recordings/{rid}   a recording and its files removed
    GET /app/watched               the events the user watched (Calendar's past)

Everything else the pages do goes through the service's API (api.py). Page templates
are templates/*.html, their scripts and style static/*.js|css (/static/streaming/).

Who the user or provider is: ``who`` below, the only place that says it. A signed-in
user or provider is who its credential says (the identity layer refuses a user's
``?user=`` naming another); an operator's page may speak for anyone (``?user=``,
``?provider=``). ``?host=`` says where the user is attached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.contract import Role
from netfate.orchestrator.api.deps import NotifierDep, SessionDep
from netfate.orchestrator.api.errors import errors
from netfate.orchestrator.identity import Principal
from netfate.store.tables import EventRow as LogRow
from netfate.store.tables import HostRow

from . import reconcile, recordings
from .api import RecordingId, viewer_of
from .tables import EventRow, ProviderRow, RecordingRow

router = APIRouter()

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
LIBRARY = HERE / "web" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    # The player fetches HLS (live and recordings) from edge streamers, at addresses
    # that come and go with the tree, and plays it through MediaSource (a blob: URL).
    "media-src 'self' blob:; connect-src 'self' http: https:; manifest-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
WATCHED_SCAN = 5000
"""Viewer assignments looked at (newest first) for one user's past events."""

MANIFEST = {
    "name": "netfate live",
    "short_name": "live",
    "description": "Live events of small content providers, recordings and reminders",
    "start_url": "/api/v1/streaming/app",
    "scope": "/api/v1/streaming/",
    "display": "standalone",
    "background_color": "#0b0f14",
    "theme_color": "#0b0f14",
    "icons": [{"src": "/static/favicon.svg", "sizes": "any", "type": "image/svg+xml"}],
}


@dataclass(frozen=True)
class Who:
    """The page's principal."""

    user: str | None = None
    provider: str | None = None
    host: str | None = None
    pe: str | None = None
    """The user's access PE (their host's node), where edge streamers are chosen."""


def who(request: Request, session: Session) -> Who:
    """Who the page's user or provider is: the signed-in user or provider itself; for
    an operator, whom the page names (``?user=U[&host=H]`` or ``?provider=P``)."""
    q = request.query_params
    user, provider, host = q.get("user"), q.get("provider"), q.get("host")
    p = getattr(request.state, "principal", None)
    if isinstance(p, Principal) and p.role is Role.USER:
        user, provider = p.name, None
    elif isinstance(p, Principal) and p.role is Role.PROVIDER:
        user, provider = None, p.name
    for name, value, most in (("user", user, 254), ("provider", provider, 48), ("host", host, 64)):
        if value is not None and not 0 < len(value) <= most:
            raise HTTPException(422, detail=f"{name}: 1 to {most} characters")
    pe = None
    if host is not None:
        h = session.get(HostRow, host)
        if h is None:
            raise HTTPException(404, detail=f"unknown host {host!r}")
        pe = h.node
    if provider is not None and session.get(ProviderRow, provider) is None:
        raise HTTPException(404, detail=f"unknown provider {provider!r}")
    return Who(user=user, provider=provider, host=host, pe=pe)


def _user(request: Request, session: Session) -> str:
    w = who(request, session)
    if w.user is None:
        raise HTTPException(401, detail="say whom the page is for (?user=NAME)")
    return w.user


def _page(name: str) -> HTMLResponse:
    return HTMLResponse((TEMPLATES / name).read_text(encoding="utf-8"), headers=HEADERS)


@router.get("/app", response_class=HTMLResponse, include_in_schema=False)
def user_app() -> HTMLResponse:
    return _page("app.html")


@router.get("/studio", response_class=HTMLResponse, include_in_schema=False)
def provider_app() -> HTMLResponse:
    return _page("studio.html")


@router.get("/app/hls.js", include_in_schema=False)
def player_library() -> FileResponse:
    if not LIBRARY.is_file():
        raise HTTPException(503, detail="hls.js is not installed: run `make deps`")
    return FileResponse(
        LIBRARY,
        media_type="text/javascript",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/app/manifest.webmanifest", include_in_schema=False)
def web_manifest() -> JSONResponse:
    return JSONResponse(MANIFEST, media_type="application/manifest+json")


@router.get("/app/me", responses=errors(404))
def me(
    request: Request,
    session: SessionDep,
    user: str | None = Query(default=None, max_length=254),
    provider: str | None = Query(default=None, max_length=48),
    host: str | None = Query(default=None, max_length=64),
) -> dict[str, Any]:
    """Who the page speaks for, and the user's access PE when a host is given."""
    w = who(request, session)
    return {"user": w.user, "provider": w.provider, "host": w.host, "pe": w.pe}


def _title(session: Session, event: int) -> dict[str, Any]:
    e = session.get(EventRow, event)
    if e is None:
        return {"event": event}
    p = session.get(ProviderRow, e.provider)
    return {
        "event": event,
        "title": e.title,
        "provider": e.provider,
        "provider_title": p.title if p is not None else e.provider,
        "start": e.start,
        "event_state": e.state,
    }


@router.get("/app/recordings", responses=errors(401))
def my_recordings(
    request: Request, session: SessionDep, user: str = Query(max_length=254)
) -> list[dict[str, Any]]:
    """MyShare: the user's recordings, newest first, each with its event, how to play
    it (``play``: through an edge streamer) and what the storage function reports."""
    name = _user(request, session)
    rows = session.scalars(
        select(RecordingRow)
        .where(RecordingRow.user == name, RecordingRow.state.in_(recordings.KEPT))
        .order_by(RecordingRow.id.desc())
    )
    out = []
    for r in rows:
        out.append(
            {
                "id": r.id,
                "state": r.state,
                "created_at": r.created_at,
                "stopped_at": r.stopped_at,
                **_title(session, r.event),
                **recordings.playback(session, r),
            }
        )
    return out


@router.delete("/app/recordings/{rid}", responses=errors(401, 404))
def delete_recording(
    rid: RecordingId,
    request: Request,
    session: SessionDep,
    notifier: NotifierDep,
    user: str = Query(max_length=254),
) -> dict[str, Any]:
    """Remove one of the user's recordings: the storage function deletes its files
    (they no longer count against the quota)."""
    name = _user(request, session)
    r = session.get(RecordingRow, rid)
    if r is None or r.user != name or r.state not in recordings.KEPT:
        raise HTTPException(404, detail=f"{name} has no recording {rid}")
    r.state = "deleted"
    r.stopped_at = r.stopped_at or time.time()
    session.flush()
    touched = reconcile.step(session)
    session.commit()
    notifier.notify(touched)
    return {"deleted": rid}


@router.get("/app/watched", responses=errors(401))
def watched(
    request: Request, session: SessionDep, user: str = Query(max_length=254)
) -> list[dict[str, Any]]:
    """The events the user joined on any of its devices (the back-end's viewer
    assignments), newest first."""
    name = _user(request, session)
    seen: dict[int, float] = {}
    rows = session.scalars(
        select(LogRow)
        .where(LogRow.kind == "StreamingViewerAssigned")
        .order_by(LogRow.id.desc())
        .limit(WATCHED_SCAN)
    )
    for row in rows:
        d = row.data or {}
        content = str(d.get("content", ""))
        whose = viewer_of(str(d.get("client", "")))
        if whose and whose[0] == name and content.startswith("ev") and content[2:].isdigit():
            seen.setdefault(int(content[2:]), row.at)
    return [{**_title(session, eid), "joined_at": at} for eid, at in seen.items()]
