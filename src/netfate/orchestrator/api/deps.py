"""FastAPI dependencies shared by every router (services' routers too)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from netfate.contract import Capabilities
from netfate.orchestrator.identity.guard import audit_into
from netfate.orchestrator.notify import Notifier
from netfate.store.db import Database


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; handlers commit what they mean to keep.

    A GET only reads (reads never write), so its session never holds up writers;
    any other method's session may write, and on SQLite takes the write lock
    before its first read (store/db.py)."""
    db: Database = request.app.state.db
    s = db.open(write=request.method not in ("GET", "HEAD"))
    audit_into(request, s)  # the request's audit line goes in with its first commit
    try:
        yield s
    finally:
        s.rollback()
        s.close()


def get_notifier(request: Request) -> Notifier:
    n: Notifier = request.app.state.notifier
    return n


def get_capabilities(request: Request) -> Capabilities:
    """What the app's services provide each other (contract.Capabilities)."""
    caps: Capabilities = request.app.state.capabilities
    return caps


SessionDep = Annotated[Session, Depends(get_session)]
NotifierDep = Annotated[Notifier, Depends(get_notifier)]
DatabaseDep = Annotated[Database, Depends(get_db)]
CapabilitiesDep = Annotated[Capabilities, Depends(get_capabilities)]
