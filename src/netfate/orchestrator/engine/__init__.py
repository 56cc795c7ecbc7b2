"""Placement and policies: pure functions over the model, no I/O."""

from netfate.orchestrator.engine.placement import (
    POLICIES,
    Candidate,
    NoPlacement,
    Placement,
    PlacementRequest,
    place,
    register_policy,
)

__all__ = [
    "POLICIES",
    "Candidate",
    "NoPlacement",
    "Placement",
    "PlacementRequest",
    "place",
    "register_policy",
]
