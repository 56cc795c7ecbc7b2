"""Placement and policies: pure functions over the model, no I/O.

Two layers:

- per-instance policies (`place`, `POLICIES`): one instance, one node, now;
- the placement optimiser (`place_batch`, `replace`, `rebalance`, `remove`):
  service chains of many subscribers over a network with capacities, link
  bandwidth, SLAs and an energy model, by a heuristic or an exact solver, each
  decision explained. See optimiser.py and model.py.
"""

from netfate.orchestrator.engine.check import Violation, check
from netfate.orchestrator.engine.decisions import Decision
from netfate.orchestrator.engine.model import (
    Block,
    Chain,
    Infrastructure,
    Link,
    ModelError,
    Node,
    NodeKind,
    Sla,
    Subscription,
    Talk,
    Usage,
    validate_subscriptions,
)
from netfate.orchestrator.engine.monitoring import (
    Monitoring,
    NodeSeries,
    Sample,
    diurnal,
    estimate,
    from_series,
)
from netfate.orchestrator.engine.network import Network
from netfate.orchestrator.engine.objective import (
    CONSOLIDATION,
    LATENCY,
    Objective,
    mix,
    objective_named,
)
from netfate.orchestrator.engine.optimiser import (
    Plan,
    SolveStats,
    adopt,
    place_batch,
    rebalance,
    remove,
    replace,
)
from netfate.orchestrator.engine.placement import (
    POLICIES,
    Candidate,
    NoPlacement,
    Placement,
    PlacementRequest,
    place,
    register_policy,
)
from netfate.orchestrator.engine.refusals import Infeasible, Refusal

__all__ = [
    "CONSOLIDATION",
    "LATENCY",
    "POLICIES",
    "Block",
    "Candidate",
    "Chain",
    "Decision",
    "Infeasible",
    "Infrastructure",
    "Link",
    "ModelError",
    "Monitoring",
    "Network",
    "NoPlacement",
    "Node",
    "NodeKind",
    "NodeSeries",
    "Objective",
    "Placement",
    "PlacementRequest",
    "Plan",
    "Refusal",
    "Sample",
    "Sla",
    "SolveStats",
    "Subscription",
    "Talk",
    "Usage",
    "Violation",
    "adopt",
    "check",
    "diurnal",
    "estimate",
    "from_series",
    "mix",
    "objective_named",
    "place",
    "place_batch",
    "rebalance",
    "register_policy",
    "remove",
    "replace",
    "validate_subscriptions",
]
