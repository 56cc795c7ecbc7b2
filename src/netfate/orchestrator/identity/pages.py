"""The web's sign-in page (no script needed), served by the orchestrator:

    GET  /signin?next=PATH   the form (PUBLIC)
    POST /signin             name, password, next (a form): the web session's cookies
                             and 303 to `next`, a path of this origin only (guard.safe_next);
                             a wrong password is the form again with the error (401),
                             too many failures the form with the wait (429, Retry-After)

A browser that opens a page (the dashboard, a service's `pages`) without a session
is sent here by the guard (`SignInFirst`), with the page as `next`; one whose
session's role may not see the page gets this form with the reason (403). Signing out is
DELETE /api/v1/auth/session (the pages' sign-out button, web/static/session.js).
The page is plain HTML from web/templates/signin.html, served with the dashboard's
Content-Security-Policy.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from netfate import web
from netfate.orchestrator.identity.guard import (
    Identity,
    SignInFirst,
    here,
    origin_host,
    safe_next,
)
from netfate.orchestrator.identity.routes import SignIn, start_web_session

router = APIRouter(include_in_schema=False)

TEMPLATE = Path(web.__file__).parent / "templates" / "signin.html"
MAX_FORM = 4096
"""A sign-in form's largest body: a name, a password (each bounded by SignIn) and next."""
HEADERS = {
    "Content-Security-Policy": web.CSP,
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it Chromium sends the form's POST with "Origin: null",
    # which the origin check below must refuse.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(next_path: str, error: str = "", name: str = "") -> str:
    fields = {
        "next": next_path,
        "name": name,
        "error": error,
        "error_hidden": "" if error else "hidden",
        "invalid": "true" if error else "false",
    }
    out = TEMPLATE.read_text(encoding="utf-8")
    for key, value in fields.items():
        out = out.replace("{{" + key + "}}", html.escape(value, quote=True))
    return out


def _page(next_path: str, status: int = 200, error: str = "", name: str = "",
          headers: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    return HTMLResponse(render(next_path, error, name), status_code=status,
                        headers={**HEADERS, **(headers or {})})  # fmt: skip


def install(app: FastAPI) -> None:
    """The sign-in routes, and the answer to a browser sent to sign in first."""
    app.include_router(router)

    @app.exception_handler(SignInFirst)
    async def _sign_in_first(request: Request, exc: SignInFirst) -> Response:
        if exc.refused is not None:  # signed in, but this page is not for its role
            return _page(here(request), 403, f"Refused ({exc.refused}): sign in as someone "
                         "this page is for, or go back.")  # fmt: skip
        return RedirectResponse(exc.location, status_code=303,
                                headers={"Cache-Control": "no-store"})  # fmt: skip


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> HTMLResponse:
    """The sign-in form; `next` is where a successful sign-in goes (this origin only)."""
    return _page(safe_next(request.query_params.get("next")))


def _field(form: dict[str, list[str]], key: str) -> str:
    values = form.get(key) or [""]
    return values[0]


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    """Sign in from the form (module doc)."""
    ident: Identity = request.app.state.identity
    origin = origin_host(request)
    if origin is not None and (origin == "null" or not ident.host_allowed(origin)):
        # A form posted from another site would sign this browser in as someone else.
        return _page("/", 403, "This form was sent from another site: sign in here.")
    raw = await request.body()
    if len(raw) > MAX_FORM:
        return _page("/", 413, "That form is too large.")
    try:
        form = parse_qs(raw.decode("utf-8"), max_num_fields=8, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return _page("/", 400, "That form could not be read.")
    next_path = safe_next(_field(form, "next"))
    name = _field(form, "name").strip()
    try:
        body = SignIn(name=name, password=_field(form, "password"))
    except ValidationError:
        return _page(next_path, 400, "Enter your name and your password.", name[:254])
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})

    def work() -> None:
        with ident.db.session() as s:
            start_web_session(request, response, s, body)

    try:
        await run_in_threadpool(work)  # the password hash takes a worker, not the loop
    except HTTPException as e:
        if e.status_code == 429:
            wait = (e.headers or {}).get("Retry-After", "60")
            return _page(next_path, 429, f"Too many failed sign-ins. Try again in {wait} "
                         "seconds.", name, {"Retry-After": wait})  # fmt: skip
        if e.status_code == 401:
            return _page(next_path, 401, "Wrong name or password.", name)
        return _page(next_path, e.status_code, str(e.detail), name)
    return response
