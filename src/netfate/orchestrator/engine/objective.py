"""What the optimiser minimises.

One linear form serves all three objectives:

    value = energy_weight * (power of the on nodes, W)
          + latency_weight * (sum over subscriptions of the user-to-entry round trip, ms)

- ``consolidation``: energy only. Idle power makes every extra on node expensive, so
  minimising energy also minimises active nodes; the node count is reported.
- ``latency``: round trips only. Nodes that are on stay on (nothing asked to save
  energy); a node that hosts nothing and was off stays off.
- ``mix``: both, with the exchange rate given by the weights (e.g. latency_weight=2:
  one ms of round trip for one subscriber is worth 2 W).

A re-placement adds a move cost per block that leaves its node, in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    name: str
    energy_weight: float
    """Per watt of the plan's power."""
    latency_weight: float
    """Per millisecond of a subscriber's round trip to their chain's entry."""

    def __post_init__(self) -> None:
        if self.energy_weight < 0 or self.latency_weight < 0:
            raise ValueError("objective weights are >= 0")
        if self.energy_weight == 0 and self.latency_weight == 0:
            raise ValueError("an objective weighs energy, latency or both")

    def value(self, energy_w: float, rtt_ms_sum: float) -> float:
        return self.energy_weight * energy_w + self.latency_weight * rtt_ms_sum

    @property
    def saves_energy(self) -> bool:
        return self.energy_weight > 0


CONSOLIDATION = Objective("consolidation", 1.0, 0.0)
LATENCY = Objective("latency", 0.0, 1.0)


def mix(energy_weight: float = 1.0, latency_weight: float = 1.0) -> Objective:
    """A weighted mix: `latency_weight` units per ms against `energy_weight` per W."""
    return Objective("mix", energy_weight, latency_weight)


def objective_named(
    name: str, energy_weight: float = 1.0, latency_weight: float = 1.0
) -> Objective:
    """By name, as an API or CLI gets it: consolidation, latency or mix."""
    if name == "consolidation":
        return CONSOLIDATION
    if name == "latency":
        return LATENCY
    if name == "mix":
        return mix(energy_weight, latency_weight)
    raise ValueError(f"unknown objective {name!r}; known: consolidation, latency, mix")
