"""Wiring only: build the FastAPI app from a database and settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from netfate.model.lifecycle import IllegalTransition
from netfate.model.topology import Topology, TopologyError
from netfate.orchestrator.api.routes import router as core_router
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import LifecycleError
from netfate.orchestrator.nfv.topology import load_topology
from netfate.orchestrator.notify import Notifier
from netfate.store.db import Database

log = logging.getLogger("netfate.orchestrator")


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///netfate.db"
    topology: Path | None = None
    heartbeat_timeout_s: float = 3.0
    """A node is unreachable after this long without a report (agents report each ~1 s)."""
    migration_deadline_s: float = 30.0
    """A migration neither agent settled this long after it started is rolled back."""


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    db = db or Database(settings.database_url)
    notifier = Notifier()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier.bind(asyncio.get_running_loop())
        await asyncio.to_thread(_prepare, db, settings)
        watchdog = asyncio.create_task(_watch_heartbeats(db, notifier, settings))
        try:
            yield
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    app = FastAPI(
        title="netfate orchestrator",
        version="0.1.0",
        description="Places personal network functions on edge nodes and steers traffic "
        "through them. Agents converge their node to the desired state held here.",
        openapi_url="/api/v1/openapi.json",
        # Swagger UI and ReDoc load their assets from a CDN: blank pages in an offline
        # lab. The OpenAPI document itself is served (and works with any viewer).
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.notifier = notifier
    app.state.settings = settings

    @app.exception_handler(LifecycleError)
    async def _lifecycle(_r: Request, exc: LifecycleError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)})

    @app.exception_handler(IllegalTransition)
    async def _illegal(_r: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(TopologyError)
    async def _topology(_r: Request, exc: TopologyError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    app.include_router(core_router, prefix="/api/v1")
    for router in _service_routers():
        app.include_router(router, prefix="/api/v1")
    _mount_web(app)
    return app


def _service_routers() -> list[APIRouter]:
    """Routers of the services and of the SDN controller, mounted under /api/v1."""
    from netfate.orchestrator import routers

    return routers.all_routers()


def _mount_web(app: FastAPI) -> None:
    from netfate.web import mount

    mount(app)


def _prepare(db: Database, settings: Settings) -> None:
    db.migrate()
    with db.session() as s:
        nfv.ensure_builtin_descriptors(s)
        if settings.topology is not None:
            load_topology(s, Topology.load(settings.topology))


async def _watch_heartbeats(db: Database, notifier: Notifier, settings: Settings) -> None:
    """Nodes that stopped reporting, and migrations past their deadline."""

    def check() -> tuple[list[str], set[str]]:
        with db.session() as s:
            lost = nfv.mark_unreachable(s, settings.heartbeat_timeout_s)
            late = nfv.expire_migrations(s, settings.migration_deadline_s)
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
