"""Extra routers: the SDN controller's and every service's (see netfate.services)."""

from __future__ import annotations

from fastapi import APIRouter

from netfate import services


def all_routers() -> list[APIRouter]:
    from netfate.orchestrator.sdn.api import router as sdn_router

    routers: list[APIRouter] = [sdn_router]
    for mod in services.load():
        router = getattr(mod, "router", None)
        if isinstance(router, APIRouter):
            routers.append(router)
    return routers
