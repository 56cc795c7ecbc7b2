"""Events of the platform, past tense, one dataclass each (DESIGN.md convention 5).

They are what the event log stores and what the dashboard streams. `kind` is the
class name; `to_data()` gives the JSON payload.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "Event"

    def to_data(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.kind = cls.__name__


@dataclass(frozen=True)
class NodeRegistered(Event):
    node: str
    """The node whose agent registered."""
    endpoint: str
    """Where the agent takes migration connections (host:port)."""


@dataclass(frozen=True)
class NodeUnreachable(Event):
    node: str
    """The node whose agent missed its heartbeats."""
    silent_for_s: float
    """Seconds since its last heartbeat."""


@dataclass(frozen=True)
class InstanceStateChanged(Event):
    instance: str
    """Instance id."""
    node: str
    """Node it is placed on."""
    previous: str
    """State before."""
    state: str
    """State after."""
    reason: str
    """Why, in words."""


@dataclass(frozen=True)
class InstancePlaced(Event):
    instance: str
    """Instance id."""
    node: str
    """Chosen node."""
    policy: str
    """Placement policy that chose it."""
    why: str
    """The policy's explanation."""


@dataclass(frozen=True)
class InstanceMigrated(Event):
    instance: str
    """Instance id."""
    source: str
    """Node it left."""
    target: str
    """Node it now runs on."""
    downtime_ms: float | None
    """Time no copy served: source frozen until target active (None: not measured,
    the move was recorded on the source's word)."""
    state_bytes: int | None
    """Size of the state carried (None: not reported)."""


@dataclass(frozen=True)
class MigrationFailed(Event):
    instance: str
    """Instance id."""
    source: str
    """Node it stays on."""
    target: str
    """Node it could not move to."""
    reason: str
    """What went wrong."""


@dataclass(frozen=True)
class MigrationDeadlinePassed(Event):
    instance: str
    """Instance id."""
    source: str
    """Node it is moving from."""
    target: str
    """Node it was moving to."""
    deadline_s: float
    """The deadline it missed, in seconds from its start; the agents now roll it back."""


@dataclass(frozen=True)
class InstanceReconfigured(Event):
    instance: str
    """Instance id."""
    node: str
    """Node it runs on."""
    keys: list[str]
    """Configuration keys that changed."""


@dataclass(frozen=True)
class RequestServed(Event):
    """A state-changing API request a person or a provider made, whose changes were
    committed (the audit log; the event's actor is who made it). Written in the
    request's own transaction, with its changes."""

    method: str
    """POST, PUT, PATCH or DELETE."""
    path: str
    """The URL path asked for."""
    status: int | None = None
    """The answer's status (below 400) when the line was written after the answer was
    made (a request that committed nothing through its own session); None when
    written with the request's changes, before there was an answer."""


@dataclass(frozen=True)
class SignedIn(Event):
    account: str
    """The account that signed in (a failed sign-in is not an event: it would show
    the names people try)."""
    via: str
    """api (a token for the API) or session (the web's cookie)."""


@dataclass(frozen=True)
class NodeDraining(Event):
    node: str
    """The node being switched off."""
    why: str
    """Who asked, and why."""
    moves: dict[str, str]
    """Instance -> the node it migrates to."""


@dataclass(frozen=True)
class NodePoweredOff(Event):
    node: str
    """The node now off: it hosts nothing and is counted at 0 W."""
    why: str
    """Who asked, and why."""


@dataclass(frozen=True)
class NodePoweredOn(Event):
    node: str
    """The node back on: placement may use it again."""
    why: str
    """Who asked, and why."""


@dataclass(frozen=True)
class NodeDrainFailed(Event):
    node: str
    """The node that stays on."""
    reason: str
    """What could not move (its instances keep running there)."""
