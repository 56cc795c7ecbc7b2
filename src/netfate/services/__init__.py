"""One folder per service (DESIGN.md, convention 10).

A service package may define, at its top level:

    router: fastapi.APIRouter        mounted under /api/v1
    DESCRIPTORS: list[dict]          VNF descriptors it provides (seeded at start);
                                     `function` may be "package.module:Class"
    DEMO: str                        module with TOPOLOGY, check(tb, say), show(tb, say)
                                     for `netfate demo NAME` (SDN = True: with the
                                     testbed's controller)
    DEMO_NAME: str                   NAME, where it is not the service's name
    CLI: str                         "package.module:app", a typer app mounted as
                                     `netfate NAME ...`

Its tables live on the shared `netfate.store.Base`, and its Alembic revision in
store/migrations/versions/ branches from "0001_initial" with its own
branch_labels, so services never depend on each other's migrations.

Adding a service is one line in SERVICES.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SERVICES: tuple[str, ...] = ("firewall", "sharing", "usbip")


def load() -> list[ModuleType]:
    return [importlib.import_module(f"netfate.services.{name}") for name in SERVICES]


def names() -> tuple[str, ...]:
    return SERVICES
