"""The pre-deploy policy: which function images each node keeps, and its warm standbys.

A pure function over three inputs, no I/O:

- each node's budget (`Budget`, set by the operator: `PUT /nodes/NODE/predeploy`):
  the storage its pre-deployed images may take, and how many warm standbys it keeps;
- demand: how many copies of each function were asked of each node (all time,
  gone ones included: what was asked for, not what runs now): the instances
  created there and the migrations into it (nfv/predeploy.py's `demand`);
- each function's image size (its package on disk: `image_mb`).

Per node, the candidate functions are those requested anywhere, ranked most
requested *here* first, then most requested everywhere (a node with no history of
its own still gets what the platform is asked for), then by name. Images are kept
in that order while they fit the storage budget; one that does not fit is refused
with the figures that refused it. The standby slots then go round-robin over the
kept images in rank order, so the most requested kind gets the first slot, and two
slots on a node with one kept kind both go to it. A standby is only ever of a kept
image: no image here, no standby.

Every choice carries its reason, shown to the operator as is (`GET /predeploy`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from netfate.vnf import registry


@dataclass(frozen=True)
class Budget:
    """What a node may spend on pre-deployment."""

    storage_mb: float = 0.0
    """Room for pre-deployed function images (MB)."""
    standbys: int = 0
    """Warm standbys kept (each an idle process in its own namespace)."""


@dataclass(frozen=True)
class Choice:
    """One function considered for one node, and why it was kept or refused."""

    function: str
    size_mb: float
    kept: bool
    reason: str


@dataclass
class NodePlan:
    """What one node keeps pre-deployed."""

    node: str
    budget: Budget
    images: list[Choice] = field(default_factory=list)
    """Every candidate, in rank order: kept ones and refused ones."""
    standbys: dict[str, int] = field(default_factory=dict)
    """Function -> warm standbys to keep ready (only kept images)."""
    standby_reasons: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[str]:
        return [c.function for c in self.images if c.kept]

    @property
    def used_mb(self) -> float:
        return sum(c.size_mb for c in self.images if c.kept)


def plan_node(
    node: str,
    budget: Budget,
    demand: Mapping[tuple[str, str], int],
    sizes: Mapping[str, float],
) -> NodePlan:
    """The pre-deployment of `node` (see the module's docstring). `demand`: (node,
    function) -> creates; `sizes`: function -> image MB (a function without a size
    is never kept: its image cannot be accounted for). Asked: created or moved in."""
    here: dict[str, int] = {}
    everywhere: dict[str, int] = {}
    for (n, fn), count in demand.items():
        if count <= 0:
            continue
        everywhere[fn] = everywhere.get(fn, 0) + count
        if n == node:
            here[fn] = here.get(fn, 0) + count
    ranked = sorted(everywhere, key=lambda f: (-here.get(f, 0), -everywhere[f], f))
    out = NodePlan(node=node, budget=budget)
    left = budget.storage_mb
    for rank, fn in enumerate(ranked, 1):
        asked = f"rank {rank}: {here.get(fn, 0)} asked here, {everywhere[fn]} everywhere"
        size = sizes.get(fn)
        if size is None:
            out.images.append(Choice(fn, 0.0, False, f"{asked}; image size unknown"))
            continue
        if size <= left + 1e-9:
            left -= size
            why = f"{asked}; {size:.3f} MB fits, {left:.3f} of {budget.storage_mb:g} MB left"
            out.images.append(Choice(fn, size, True, why))
        else:
            why = (
                f"{asked}; storage budget exceeded: needs {size:.3f} MB, "
                f"{left:.3f} of {budget.storage_mb:g} MB left"
            )
            out.images.append(Choice(fn, size, False, why))
    kept = out.kept
    if budget.standbys > 0 and not kept:
        out.standby_reasons.append(
            f"{budget.standbys} standby slot(s) unused: no image kept here"
            + (" (nothing requested yet)" if not ranked else "")
        )
    for slot in range(budget.standbys if kept else 0):
        fn = kept[slot % len(kept)]
        out.standbys[fn] = out.standbys.get(fn, 0) + 1
        out.standby_reasons.append(
            f"slot {slot + 1} of {budget.standbys}: {fn} (kept image, rank "
            f"{kept.index(fn) + 1} of {len(kept)} kept)"
        )
    return out


def fit_standbys(
    standbys: Mapping[str, int], memory_mb: Mapping[str, int], free_mb: int
) -> dict[str, int]:
    """The planned standbys (function -> n, in the plan's order) that fit in `free_mb`,
    the node's memory its instances leave (each standby holds `memory_mb[function]`,
    0 when unknown). Taken one at a time round-robin over the functions, as the plan
    gives its slots; a function whose next standby does not fit gets no more. A
    standby's memory counts as used for placement (engine/placement.Candidate), and
    a node keeps only the standbys its instances leave room for: after a create took
    one, the pool is refilled only if the memory is there (no overcommit)."""
    want = {fn: n for fn, n in standbys.items() if n > 0}
    out: dict[str, int] = {}
    left = free_mb
    while want:
        for fn in list(want):
            mb = max(0, memory_mb.get(fn, 0))
            if mb > left:
                del want[fn]
                continue
            left -= mb
            out[fn] = out.get(fn, 0) + 1
            want[fn] -= 1
            if want[fn] == 0:
                del want[fn]
    return out


def plan(
    budgets: Mapping[str, Budget],
    demand: Mapping[tuple[str, str], int],
    sizes: Mapping[str, float],
) -> dict[str, NodePlan]:
    """`plan_node` for every node with a budget."""
    return {n: plan_node(n, b, demand, sizes) for n, b in sorted(budgets.items())}


@cache
def image_mb(function: str) -> float | None:
    """The size of a shipped function's image: the files of its package (or its
    module, for a single-file function) on disk, in MB. None for a name the
    registry does not hold. Found without importing the function."""
    try:
        module = registry.resolve(function).partition(":")[0]
        spec = importlib.util.find_spec(module)
    except (registry.UnknownFunction, ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    # A function in a package of its own (netfate.vnf.firewall): the whole package;
    # a module among others (netfate.vnf.counter): that module alone.
    own_package = origin.name == "__init__.py" or (
        origin.parent.name != "vnf" and origin.parent.joinpath("__init__.py").exists()
    )
    root = origin.parent if own_package else origin
    total = 0
    if root.is_file():
        total = root.stat().st_size
    else:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name.endswith((".py", ".json", ".yaml", ".txt")):
                    total += os.stat(os.path.join(dirpath, name)).st_size
    return round(total / 1e6, 6)
