"""Events of the catalog, past tense (DESIGN.md convention 5)."""

from __future__ import annotations

from dataclasses import dataclass

from netfate.model.events import Event


@dataclass(frozen=True)
class ChainPublished(Event):
    chain: str
    """The chain's name."""
    version: int
    """The version published."""
    provider: str
    """Who published it."""


@dataclass(frozen=True)
class SubscriptionPlaced(Event):
    subscription: str
    """The subscription's id."""
    user: str
    """Its user."""
    chain: str
    """name@version of the chain it runs."""
    action: str
    """placed, moved, upgraded, recreated."""
    nodes: dict[str, str]
    """Block -> node."""
    why: str
    """The placement engine's reason."""


@dataclass(frozen=True)
class SubscriptionRefused(Event):
    user: str
    """Who asked."""
    chain: str
    """name@version asked for (or the subscription moved/upgraded)."""
    reason: str
    """The engine's refusal: the binding constraint and its detail."""


@dataclass(frozen=True)
class SubscriptionEnded(Event):
    subscription: str
    """The subscription's id."""
    user: str
    """Its user."""


@dataclass(frozen=True)
class NodeConsolidated(Event):
    node: str
    """The node decided on."""
    action: str
    """off, on, or stays on (the reason says what holds it)."""
    hour: float
    """The hour of the (simulated) day the decision was made at."""
    why: str
    """The load curve's figures, what moved where, the energy before and after."""
