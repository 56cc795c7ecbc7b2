"""The one list of extra routers (SDN, services). Adding a service adds a line here."""

from __future__ import annotations

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    routers: list[APIRouter] = []
    return routers
