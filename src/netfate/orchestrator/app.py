"""Wiring only: build the FastAPI app from a database, settings and the services.

The services come from the caller (the `netfate orchestrator` command hands in
the registered ones, netfate.services; a test hands in what it needs): this
module reads their contracts (netfate.contract) and imports none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.types import ASGIApp, Receive, Scope, Send

from netfate import web
from netfate.contract import Capabilities, ContractError, Service, registered_functions
from netfate.host.private import write_private
from netfate.model.lifecycle import IllegalTransition
from netfate.model.topology import Topology, TopologyError
from netfate.orchestrator import metrics, timeseries
from netfate.orchestrator.api import errors as api_errors
from netfate.orchestrator.api import roles
from netfate.orchestrator.api.deps import SessionDep
from netfate.orchestrator.api.limits import BodyLimit, KnownHosts, Slots
from netfate.orchestrator.api.routes import router as core_router
from netfate.orchestrator.identity import accounts, guard, pages
from netfate.orchestrator.identity.door import DoorClients
from netfate.orchestrator.identity.routes import router as identity_router
from netfate.orchestrator.loops import LoopRunner
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv import fnevents, history, power
from netfate.orchestrator.nfv.errors import LifecycleError
from netfate.orchestrator.nfv.topology import load_topology
from netfate.orchestrator.notify import Notifier
from netfate.orchestrator.reports import ReportBatcher
from netfate.orchestrator.sdn.api import router as sdn_router
from netfate.orchestrator.txretry import TransactionRetry
from netfate.store.db import Database
from netfate.vnf import registry

log = logging.getLogger("netfate.orchestrator")


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///netfate.db"
    topology: Path | None = None
    heartbeat_timeout_s: float = 3.0
    """A node is unreachable after this long without a report (agents report each ~1 s)."""
    migration_deadline_s: float = 30.0
    """A migration neither agent settled this long after it started is rolled back."""
    keep_gone_instances: int = history.DEFAULT_KEEP_GONE
    """Gone instances kept (with their transitions and migrations); older ones go."""
    keep_events: int = history.DEFAULT_KEEP_EVENTS
    """Events kept in the event log; older ones go."""
    history_prune_s: float = 60.0
    """How often the history beyond those bounds is deleted."""
    max_body_bytes: int = 8 << 20
    """Larger request bodies are refused (413). The largest legitimate ones are the
    controller's flow table snapshots: ~400 bytes a flow."""
    worker_threads: int = 40
    """Threads that run the synchronous routes, their answers' encoding and the
    database work of the others (anyio's default limiter; 40 is anyio's own
    default). The database's pool holds as many connections (store/db.py)."""
    max_long_polls: int = 256
    """Long-polls waiting at once (agents' desired state, the controller's view); one
    more is answered 429. Each agent and controller holds one."""
    max_event_streams: int = 32
    """Event-stream (SSE) clients at once (dashboards); one more is answered 429."""
    long_poll_max_s: float | None = None
    """Cut every long-poll's wait to this (None: as asked, within each route's bound)."""
    prometheus_url: str | None = None
    """The Prometheus server that scrapes the platform (http://HOST:PORT): the placement
    engine reads its time series; None: the engine uses the agents' last samples."""
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    """Host header values the API answers (others get 400): a web page from a name
    that resolves here (DNS rebinding) is not served. ("*": any.)"""
    door_secret: str | None = None
    """The front door's secret (`netfate frontdoor`): a request that carries it has its
    client address from the door (identity/door.py); None: no door."""
    image_dir: Path = registry.DEFAULT_IMAGE_DIR
    """A USB/IP storage device's image must lie below this directory (each agent checks
    against its own --image-dir as well)."""
    operator_file: Path | None = None
    """On a database with no operator, the one made at start is written here (mode
    0600, JSON: name, password) instead of printed once on standard output."""


def create_app(
    settings: Settings,
    db: Database | None = None,
    *,
    services: Sequence[Service] = (),
    enforce: bool = True,
) -> FastAPI:
    """The orchestrator's app: the core's API and dashboard, and each of `services`
    (its router, roles, tables, descriptors, servers, loops and web files).

    Every route's declared roles are enforced (orchestrator/identity/guard.py).
    `enforce=False` builds the app without: every request is an operator's. It
    exists for tests and the API benchmark's baseline, and no command sets it.

    Raises ContractError if a service breaks its contract (a route without roles,
    a name taken twice)."""
    services = tuple(services)
    _check_names(services)
    functions = registered_functions(services)
    capabilities = Capabilities(services)  # what they provide each other, by name
    owns_db = db is None
    db = db or Database(settings.database_url, pool_size=max(1, settings.worker_threads // 2))
    identity = guard.Identity(db, enforce=enforce, allowed_hosts=settings.allowed_hosts)
    notifier = Notifier()
    loops = LoopRunner(db, notifier, [(svc.name, lp) for svc in services for lp in svc.loops])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier.bind(asyncio.get_running_loop())
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        await asyncio.to_thread(_prepare, db, settings, services)
        async with contextlib.AsyncExitStack() as stack:
            if owns_db:
                # Last out: the pool's connections close with the app (an engine the
                # caller handed in is the caller's). The engine stays usable: a later
                # session opens new connections.
                stack.callback(db.dispose)
            for svc in services:
                if svc.lifespan is not None:
                    await stack.enter_async_context(svc.lifespan(app))
            loops.start()
            stack.push_async_callback(loops.stop)
            tasks = [
                asyncio.create_task(_watch_heartbeats(db, notifier, settings)),
                asyncio.create_task(_prune_history(db, settings)),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = FastAPI(
        title="netfate orchestrator",
        version="0.1.0",
        description="Places personal network functions on edge nodes and steers traffic "
        "through them. Agents converge their node to the desired state held here."
        + _aliases_text(services),
        openapi_url="/api/v1/openapi.json",
        # Swagger UI and ReDoc load their assets from a CDN: blank pages in an offline
        # lab. The OpenAPI document itself is served (and works with any viewer).
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # One place for who may use what: every route, whoever declared it.
        dependencies=[Depends(guard.enforce if enforce else guard.unchecked)],
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.state.db = db
    app.state.identity = identity
    app.state.notifier = notifier
    app.state.settings = settings
    app.state.services = services
    app.state.functions = functions
    app.state.capabilities = capabilities
    app.state.function_events = fnevents.dispatcher(services)
    app.state.reports = ReportBatcher(db, notifier.notify, app.state.function_events)
    app.state.loops = loops
    app.state.long_polls = Slots(settings.max_long_polls, "long-polls")
    app.state.timeseries = timeseries.Reader(settings.prometheus_url)
    timeseries.configure(app.state.timeseries)
    app.state.event_streams = Slots(settings.max_event_streams, "event streams")

    api_errors.install(app)

    @app.exception_handler(LifecycleError)
    async def _lifecycle(_r: Request, exc: LifecycleError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=api_errors.body(str(exc)))

    @app.exception_handler(IllegalTransition)
    async def _illegal(_r: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(status_code=409, content=api_errors.body(str(exc)))

    @app.exception_handler(DataError)
    async def _data(_r: Request, exc: DataError) -> JSONResponse:
        # Input the database cannot hold (a NUL in text, a number out of a column's
        # range): the request's fault, refused like other invalid input.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid data"
        log.warning("refused input the database cannot hold: %s", reason)
        return JSONResponse(status_code=422, content=api_errors.body(f"invalid input: {reason}"))

    @app.exception_handler(TopologyError)
    async def _topology(_r: Request, exc: TopologyError) -> JSONResponse:
        return JSONResponse(status_code=422, content=api_errors.body(str(exc)))

    # Lost races run again, then 409; an unreachable database is 503 (txretry.py).
    app.add_middleware(TransactionRetry)
    requests = metrics.RequestMetrics()
    app.add_middleware(metrics.CountRequests, metrics=requests)

    @app.get("/metrics", tags=["meta"], response_class=Response,
             responses={200: {"content": {metrics.CONTENT_TYPE: {}},
                              "description": "Prometheus text exposition"}})  # fmt: skip
    def prometheus_metrics(session: SessionDep) -> Response:
        """The orchestrator's figures for Prometheus (orchestrator/metrics.py)."""
        body = metrics.exposition(requests, session, loops)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    app.include_router(core_router, prefix="/api/v1")
    app.include_router(identity_router, prefix="/api/v1")
    app.include_router(sdn_router, prefix="/api/v1")
    for svc in services:
        if svc.api is not None:
            app.include_router(svc.api, prefix=f"/api/v1{svc.prefix}", tags=[svc.name])
    web.mount(
        app,
        statics={svc.name: svc.static for svc in services if svc.static is not None},
        panels=[f"/static/{svc.name}/{p}" for svc in services for p in svc.panels],
    )
    pages.install(app)  # /signin, where a browser without a session is sent
    app.state.roles = roles.matrix(app.routes, services)
    requests.learn_routes(app.routes)
    identity.bind(app.routes, app.state.roles, pages=roles.pages(services))
    _annotate_openapi(app)  # 401 and 403, then their body with every error's:
    api_errors.document_common_errors(app)
    if enforce:
        guard.audit_commits(db)
        app.add_middleware(guard.Audit, db=db)
    aliases = {f"/api/v1/{a.strip('/')}": f"/api/v1{svc.prefix}" for svc in services
               for a in svc.api_aliases}  # fmt: skip
    if aliases:
        app.add_middleware(_Aliases, aliases=aliases)
    if settings.allowed_hosts and "*" not in settings.allowed_hosts:
        app.add_middleware(KnownHosts, hosts=settings.allowed_hosts)
    if settings.door_secret is not None:  # outermost: no other part sees the door's headers
        app.add_middleware(DoorClients, secret=settings.door_secret)
    return app


# The first path segments the core uses (its routes below /api/v1, and /static/):
# a service may not take one as its name.
CORE_PREFIXES = frozenset(
    {"static"}
    | {
        p.split("/")[3]
        for p in (k.split(" ", 1)[1] for k in roles.CORE)
        if p.startswith("/api/v1/")
    }
)


def _check_names(services: Sequence[Service]) -> None:
    taken: dict[str, str] = {p: "the core" for p in CORE_PREFIXES}
    for svc in services:
        for name in (svc.name, *(a.strip("/") for a in svc.api_aliases)):
            if not name.replace("-", "").replace("_", "").isalnum() or name != name.lower():
                raise ContractError(f"service {svc.name}: {name!r} is not a valid name")
            if name in taken:
                raise ContractError(f"service {svc.name}: {name!r} is taken by {taken[name]}")
            taken[name] = f"service {svc.name}"


def _aliases_text(services: Sequence[Service]) -> str:
    pairs = [(a, svc.name) for svc in services for a in svc.api_aliases]
    if not pairs:
        return ""
    listed = ", ".join(f"/api/v1/{a.strip('/')}/... = /api/v1/{n}/..." for a, n in pairs)
    return f" Earlier paths kept as aliases: {listed}."


def _annotate_openapi(app: FastAPI) -> None:
    """Each operation of the OpenAPI document names its roles (x-roles)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = roles.annotate(generate(), app.state.roles)
            _function_configs(doc, app.state.functions)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _function_configs(doc: dict[str, Any], functions: frozenset[str]) -> None:
    """Each registered function's configuration schema, in the document's components
    (``FnConfig.<Model>``) and listed by function under ``x-function-configs``: what
    an instance's or a descriptor's ``config`` must be (checked at the API and again
    by the agent)."""
    comps = doc.setdefault("components", {}).setdefault("schemas", {})
    listed: dict[str, Any] = {}
    template = "#/components/schemas/FnConfig.{model}"
    for ref in sorted(functions):
        model = registry.schema(ref)
        if model is None:
            listed[ref] = {"type": "object", "description": "not typed yet"}
            continue
        js = model.model_json_schema(ref_template=template)
        for name, sub in js.pop("$defs", {}).items():
            comps[f"FnConfig.{name}"] = sub
        comps[f"FnConfig.{model.__name__}"] = js
        listed[ref] = {"$ref": template.format(model=model.__name__)}
    doc["x-function-configs"] = listed


class _Aliases:
    """Requests to a service's earlier prefix are served by its routes (the path
    is rewritten before routing, so roles and handlers are the same ones)."""

    def __init__(self, app: ASGIApp, aliases: dict[str, str]) -> None:
        self.app = app
        self.aliases = sorted(aliases.items(), key=lambda kv: -len(kv[0]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for old, new in self.aliases:
                if path == old or path.startswith(old + "/"):
                    raw: bytes = scope.get("raw_path") or path.encode()
                    if raw.startswith(old.encode()):
                        raw = new.encode() + raw[len(old) :]
                    scope = dict(scope, path=new + path[len(old) :], raw_path=raw)
                    break
        await self.app(scope, receive, send)


def _prepare(db: Database, settings: Settings, services: Sequence[Service]) -> None:
    db.migrate([svc.migrations for svc in services if svc.migrations is not None])
    with db.session() as s:
        nfv.ensure_descriptors(s, [d for svc in services for d in svc.descriptors])
        if settings.topology is not None:
            load_topology(s, Topology.load(settings.topology))
        password = accounts.ensure_first_operator(s, time.time())
        if password is not None:
            _hand_over("admin", password, settings.operator_file)


def _hand_over(name: str, password: str, path: Path | None) -> None:
    """The first operator's password, given once: to a 0600 file, or to standard
    output (never to a log)."""
    if path is not None:
        write_private(path, json.dumps({"name": name, "password": password}))
        return
    sys.stdout.write(
        f"netfate: made the first operator account {name!r} with password {password}\n"
        "netfate: it is shown this once; sign in with `netfate login` and change it with "
        f"`netfate accounts reset {name}`\n"
    )
    sys.stdout.flush()


async def _watch_heartbeats(db: Database, notifier: Notifier, settings: Settings) -> None:
    """Nodes that stopped reporting, migrations past their deadline, and drains that
    ended (nfv/power.py: off, or on again when a move failed)."""

    def check() -> tuple[list[str], set[str]]:
        with db.session() as s:
            lost = nfv.mark_unreachable(s, settings.heartbeat_timeout_s)
            late = nfv.expire_migrations(s, settings.migration_deadline_s)
            power.settle(s)
            return lost, late

    while True:
        await asyncio.sleep(settings.heartbeat_timeout_s / 4)
        try:
            lost, late = await asyncio.to_thread(check)
        except Exception:  # a database hiccup must not kill the watchdog
            log.exception("heartbeat check failed")
            continue
        if lost:
            log.warning("nodes unreachable: %s", ", ".join(lost))
        if late:
            log.warning("migrations past their deadline; rolling back on %s", ", ".join(late))
        if lost or late:
            notifier.notify(set(lost) | late)


async def _prune_history(db: Database, settings: Settings) -> None:
    """Keep the history within its bounds (nfv/history.py), a batch per transaction."""

    def step() -> history.Pruned:
        with db.session() as s:
            return history.prune(s, settings.keep_gone_instances, settings.keep_events)

    while True:
        await asyncio.sleep(settings.history_prune_s)
        try:
            while (done := await asyncio.to_thread(step)).instances or done.events:
                log.info("history pruned: %d instances, %d events", done.instances, done.events)
                if done.instances < history.BATCH and done.events < history.BATCH:
                    break
        except Exception:  # a database hiccup must not end the task
            log.exception("history prune failed")
