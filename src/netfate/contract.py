"""The service contract (DESIGN.md, convention 10): one object per service says how it
plugs into the platform.

A service is a folder, ``netfate/services/NAME/``, whose ``__init__.py`` defines
``SERVICE = Service(...)``. The core never imports a service: the top floor (the
``netfate`` command, see ``netfate.services``) imports the registered ones and
hands their ``Service`` objects to ``create_app(settings, services=...)``, to the
CLI, and to ``netfate demo``, ``netfate experiment`` and ``netfate bench``::

    Service object                  who reads it        what becomes of it
    ------------------------------  ------------------  ---------------------------------
    name                            everyone            /api/v1/NAME, `netfate NAME`,
                                                        /static/NAME/, tables NAME_*
    api, roles, api_aliases         create_app          router mounted at /api/v1/NAME;
                                                        every route's roles (an undeclared
                                                        route is an error at start-up);
                                                        old prefixes rewritten to NAME
    folder/migrations/              create_app          its Alembic branch, upgraded with
                                                        the core's (version_locations)
    descriptors                     create_app          seeded at start (kept if present)
    functions                       create_app, agents  the functions it provides (its
                                                        descriptors' too): the only ones
                                                        a descriptor may name
    lifespan                        create_app          entered with the app (servers:
                                                        e.g. the RADIUS listener)
    loops                           create_app          reconcile loops, started and
                                                        stopped with the app
    folder/static/, panels, pages   create_app, web     /static/NAME/...; panel scripts
                                                        on the dashboard; pages listed
    door                            netfate frontdoor   paths relayed to users inside
                                                        the emulated network
    cli                             netfate (CLI)       `netfate NAME ...`
    demos                           netfate demo        `netfate demo DEMO [--check]`
    experiments                     netfate experiment  `netfate experiment EXP`
    benches                         netfate bench       bench/NAME.py, run by `make bench`
    folder/topologies/              demos, tests        the service's example topologies
    on_instance_event               agents' reports     each new event a function of one
                                                        of its descriptors emitted
    provides                        other services      capabilities by name, each a
                                    (Capabilities)      "module:function" loaded when first
                                                        asked for; a name provided twice
                                                        is an error at start-up

Everything a service needs from the platform it imports (it stands above the
core); everything the platform needs from a service it reads here. What one service
needs from another it asks the platform for by a capability's name (``provides``,
``Capabilities``): it never imports the other, which may not be registered; the
name and the function's signature are the agreement between the two, documented
by the provider.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netfate.vnf import registry

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI
    from sqlalchemy.orm import Session


class ContractError(Exception):
    """A service (or the core) breaks the contract; raised when the app is built."""


class Role(enum.StrEnum):
    """Who may use a route (DESIGN.md, convention 12). Declared now; the identity
    issue enforces them (until then every route answers everyone)."""

    OPERATOR = "operator"
    """Runs the platform: topology, nodes, every service's administration."""
    PROVIDER = "provider"
    """Offers a service on the platform: its functions, its intents."""
    USER = "user"
    """An end user: a firewall's user, a Personal Network's owner, a home's resident."""
    AGENT = "agent"
    """A node agent, or a function reporting what it sees (a vHG's inventory)."""
    CONTROLLER = "controller"
    """The SDN controller: reads the network view, reports what switches hold."""
    PUBLIC = "public"
    """Anyone: pages whose data needs a sign-in of its own, health, the OpenAPI."""


Roles = tuple[Role, ...]
RouteRoles = Mapping[str, Roles]
"""``"METHOD /path"`` (the path as the router declares it, below its prefix) -> roles."""


@dataclass(frozen=True)
class Loop:
    """A reconcile loop: one pass of ``step`` converges what the service's tables say
    should be (intents, state transitions, timers) and returns the nodes whose
    desired state it changed (their agents are woken).

    The core runs each step in a worker thread, in one database session that it
    commits after the step, every ``interval_s``, and, with ``wake_on_change``, also
    soon after anything the core is told changed (an agent's report, an API write),
    ``min_gap_s`` after it; while changes keep coming (one came during its last
    step), that wait doubles each step, up to half a second (or ``interval_s``), so a
    burst of changes costs a few steps, not one per change. A step that raises is
    logged; the loop goes on.
    """

    name: str
    step: Callable[[Session], Iterable[str]]
    interval_s: float = 1.0
    wake_on_change: bool = False
    min_gap_s: float = 0.05


@dataclass(frozen=True)
class Demo:
    """``netfate demo NAME``: ``module`` (imported when the demo runs) has
    ``TOPOLOGY`` (the path of the file it runs on, one of the service's
    ``topologies/``), ``check(tb, say)`` and ``show(tb, say)``, and ``SDN = True``
    when it runs under the testbed's own controller."""

    name: str
    module: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Experiment:
    """``netfate experiment NAME``: ``command`` ("module:function") is a typer
    command (its options are the experiment's)."""

    name: str
    command: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """What one service declares; see the module's docstring for who reads what."""

    name: str
    """One name everywhere: folder, API prefix, CLI group, demo, tables, docs."""
    summary: str
    folder: Path
    """The service's folder: ``migrations/``, ``static/``, ``topologies/`` live there."""
    api: APIRouter | None = None
    """Mounted at /api/v1/NAME (the router has no prefix of its own)."""
    roles: RouteRoles = field(default_factory=dict)
    api_aliases: tuple[str, ...] = ()
    """Earlier prefixes (``/api/v1/OLD/...``) that keep working, rewritten to NAME."""
    descriptors: tuple[Mapping[str, Any], ...] = ()
    functions: tuple[str, ...] = ()
    """``"package.module:Class"`` of the functions it provides beyond those its
    descriptors name; each must be one the project ships (netfate.vnf.registry)."""
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
    loops: tuple[Loop, ...] = ()
    cli: str | None = None
    """``"module:app"``: a typer app, mounted as ``netfate NAME``."""
    demos: tuple[Demo, ...] = ()
    experiments: tuple[Experiment, ...] = ()
    benches: tuple[str, ...] = ()
    """Names of ``bench/NAME.py`` (measurement tools live outside the package, next to
    the test rigs they borrow)."""
    isolates: Callable[[Session], Iterable[tuple[str, str]]] | None = None
    """The (node, LAN) pairs the service isolates: the SDN fabric makes no LAN-to-LAN
    intent for them (the service adds the paths it allows)."""
    on_instance_event: Callable[[Session, Any, dict[str, Any]], Iterable[str] | None] | None = None
    """``(session, instance row, event)``: a function running one of ``descriptors``
    emitted ``event`` (``{"seq", "kind", ...fields}``, netfate.vnf.outbox). Called in
    the transaction of the agent's report that carried it, at least once; returns the
    nodes whose desired state it changed (their agents are woken)."""
    panels: tuple[str, ...] = ()
    """Files of ``static/`` that the dashboard loads as panels."""
    pages: Mapping[str, str] = field(default_factory=dict)
    """Title -> path (below /api/v1/NAME) of the service's own web pages. A page whose
    roles are not PUBLIC is behind sign-in: a browser without a session is sent to
    /signin, and back after."""
    door: tuple[str, ...] = ()
    """Paths (below /api/v1/NAME) the front door relays from inside the emulated
    network, each with what lies below it: the users' pages and the routes they
    call (`netfate frontdoor`); everything else of the service stays the operator's."""
    provides: Mapping[str, str] = field(default_factory=dict)
    """Capability name -> ``"module:function"``: what the service offers the other
    services (they reach it through ``Capabilities``, never by importing it). The
    provider documents each one's signature."""

    @property
    def prefix(self) -> str:
        return f"/{self.name}"

    @property
    def migrations(self) -> Path | None:
        d = self.folder / "migrations"
        return d if d.is_dir() else None

    @property
    def static(self) -> Path | None:
        d = self.folder / "static"
        return d if d.is_dir() else None

    @property
    def topologies(self) -> list[Path]:
        return sorted((self.folder / "topologies").glob("*.yaml"))

    def topology(self, name: str) -> Path:
        return self.folder / "topologies" / name


def registered_functions(services: Iterable[Service]) -> frozenset[str]:
    """The functions a descriptor may name (``module:Class``): the platform's built-in
    ones and those the registered ``services`` provide. ContractError if a service
    provides one the project does not ship (an agent would refuse to run it)."""
    out = set(registry.BUILTIN.values())
    for svc in services:
        for name in (*(str(d["function"]) for d in svc.descriptors), *svc.functions):
            try:
                out.add(registry.resolve(name))
            except registry.UnknownFunction:
                raise ContractError(
                    f"service {svc.name}: function {name!r} is not in netfate.vnf.registry"
                ) from None
    return frozenset(out)


def load(ref: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names (a module without
    ``:attribute``), imported now."""
    module, _, attr = ref.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


class NotProvided(LookupError):
    """No registered service provides the capability asked for."""


class Capabilities:
    """What the registered services provide each other (``Service.provides``), by
    capability name. Built once from the services the app serves (``create_app``:
    ``app.state.capabilities``; a route gets it as ``CapabilitiesDep``). A function
    is imported when it is first asked for, so a service's module is loaded only if
    another actually uses it.

    ContractError if two services provide one name (which to call would be a guess).
    """

    def __init__(self, services: Iterable[Service]) -> None:
        self._refs: dict[str, tuple[str, str]] = {}  # name -> (service, "module:function")
        for svc in services:
            for name, ref in svc.provides.items():
                if name in self._refs:
                    raise ContractError(
                        f"capability {name!r} is provided by both "
                        f"{self._refs[name][0]} and {svc.name}"
                    )
                self._refs[name] = (svc.name, ref)
        self._loaded: dict[str, Callable[..., Any]] = {}

    def provider(self, name: str) -> str | None:
        """The service that provides ``name``, or None."""
        got = self._refs.get(name)
        return got[0] if got else None

    def get(self, name: str) -> Callable[..., Any]:
        """The function behind ``name``; NotProvided, naming what is provided, if no
        registered service provides it."""
        if name not in self._refs:
            have = ", ".join(f"{n} ({s})" for n, (s, _r) in sorted(self._refs.items()))
            raise NotProvided(
                f"no registered service provides {name!r} (provided: {have or 'nothing'})"
            )
        if name not in self._loaded:
            fn = load(self._refs[name][1])
            if not callable(fn):
                raise ContractError(f"capability {name!r}: {self._refs[name][1]} is not callable")
            self._loaded[name] = fn
        return self._loaded[name]
