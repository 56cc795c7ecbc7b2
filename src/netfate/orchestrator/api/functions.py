"""What functions may run, checked where a request names one or configures one.

A descriptor's function must be one a registered service provides
(``app.state.functions``, from the services' contracts); an instance's configuration
must pass its function's schema (netfate.vnf.registry), with the storage images
below the orchestrator's image directory. Anything else is a 422 naming the field,
the body every validation error has (api/errors.py); nothing is imported for a
name that is refused. Each agent checks again before it runs anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from netfate.orchestrator.api.errors import invalid
from netfate.store.tables import DescriptorRow
from netfate.vnf import registry

Loc = tuple[str | int, ...]


def function(request: Request, name: str, loc: Loc) -> str:
    """The ``module:Class`` of ``name`` if a registered service provides it; else 422."""
    try:
        return registry.resolve(name, request.app.state.functions)
    except registry.UnknownFunction as e:
        raise invalid({loc: str(e)}) from None


def config(
    request: Request,
    name: str,
    cfg: Mapping[str, Any],
    loc: Loc,
    fn_loc: Loc = ("body", "function"),
) -> None:
    """422 naming each field of ``cfg`` (below ``loc``) that the schema of function
    ``name`` refuses, or naming ``fn_loc`` when ``name`` is no registered function."""
    ref = function(request, name, fn_loc)
    try:
        registry.check_config(ref, cfg, request.app.state.settings.image_dir)
    except ValidationError as e:
        raise invalid(
            {(*loc, *err["loc"]): err["msg"] for err in e.errors(include_url=False)}
        ) from None


def instance(request: Request, desc: DescriptorRow, cfg: Mapping[str, Any] | None) -> None:
    """422 unless an instance of ``desc`` given ``cfg`` runs a registered function with
    a configuration its schema takes (the descriptor's merged with ``cfg``, as
    nfv.create_instance makes it); a stored descriptor naming another function is
    refused as the request's ``descriptor``."""
    merged = {**(desc.config or {}), **(cfg or {})}
    config(request, desc.function, merged, ("body", "config"), ("body", "descriptor"))
