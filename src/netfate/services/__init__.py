"""One folder per service (DESIGN.md, convention 10), registered here by one line.

Each ``netfate/services/NAME/__init__.py`` defines ``SERVICE``, its contract
(netfate.contract.Service): routers and their roles, tables (its own Alembic
folder), descriptors, reconcile loops, CLI group, demos, benches, experiments,
dashboard panel and pages, example topologies.

This registry is wiring, on the top floor: the ``netfate`` command imports it to
hand the services to the orchestrator (``create_app(settings, services=...)``),
to the CLI and to ``netfate demo`` / ``experiment`` / ``bench``. The core never
imports it, nor any service (tests/unit/test_floors.py).

Why a tuple here and not a package entry point: a service is part of this
source tree, reviewed with it; one line in this file is the whole registration,
visible next to the others, with no reinstall of the package to take effect,
and a test can hand in a service of its own without touching installed
metadata. Entry points would be the way for services shipped as separate
packages, which netfate does not have.
"""

from __future__ import annotations

import importlib

from netfate.contract import Service

SERVICES: tuple[str, ...] = (
    "netfate.services.firewall",
    "netfate.services.sharing",
    "netfate.services.usbip",
    "netfate.services.streaming",
    "netfate.services.catalog",
)
"""Modules whose ``SERVICE`` is a registered service, in this order."""


def registered() -> tuple[Service, ...]:
    """The registered services' contracts (imports each service package)."""
    out = []
    for module in SERVICES:
        svc = getattr(importlib.import_module(module), "SERVICE", None)
        if not isinstance(svc, Service):
            raise TypeError(f"{module}.SERVICE is not a netfate.contract.Service")
        out.append(svc)
    return tuple(out)
