"""Monitoring figures in: per-node and per-link samples or short time series, reduced to
the loads the optimiser takes (`Network.with_loads`).

The engine takes numbers, not a monitoring system: a reader (Prometheus's
HTTP API, or the agents' last reports where none runs) turns what it has into
`Sample`s. Each figure records how it was obtained (`Monitoring.notes`), so a
plan made on a single last sample says so.

A node's background load is what monitoring sees in use minus what the
optimiser's own placements reserve there (`managed`), never below zero.

`diurnal` is the simulated day/night load curve the tests and the demo drive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from netfate.orchestrator.engine.model import ModelError, Usage
from netfate.orchestrator.engine.network import Network

Estimator = Literal["last", "mean", "max", "p95"]


@dataclass(frozen=True)
class Sample:
    t: float
    """Seconds (any epoch, the same for all series)."""
    value: float


@dataclass(frozen=True)
class NodeSeries:
    cpu: Sequence[Sample] = ()
    memory_mb: Sequence[Sample] = ()
    storage_mb: Sequence[Sample] = ()


@dataclass(frozen=True)
class Estimate:
    value: float
    samples: int
    how: str


@dataclass(frozen=True)
class Monitoring:
    """Loads to give `Network.with_loads`, and how each figure was obtained."""

    nodes: dict[str, Usage] = field(default_factory=dict)
    links: dict[tuple[str, str], float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def apply(self, net: Network) -> Network:
        return net.with_loads(self.nodes, self.links)


def estimate(
    series: Sequence[Sample],
    *,
    how: Estimator = "p95",
    now: float | None = None,
    window_s: float | None = None,
    key: str = "series",
) -> Estimate | None:
    """One figure from a series: the last sample, the mean, the max or the 95th
    percentile of the samples in the window (None when it holds no sample).
    A single sample is used as it is, and the estimate says so."""
    bad = [s for s in series if not (math.isfinite(s.value) and math.isfinite(s.t))]
    bad += [s for s in series if s.value < 0]
    if bad:
        raise ModelError({key: f"samples must be finite and >= 0; got {bad[0].value!r}"})
    pts = sorted(series, key=lambda s: s.t)
    if now is not None and window_s is not None:
        pts = [s for s in pts if now - window_s <= s.t <= now]
    if not pts:
        return None
    if len(pts) == 1 or how == "last":
        label = "last sample" + (" (only one)" if len(pts) == 1 and how != "last" else "")
        return Estimate(pts[-1].value, len(pts), label)
    vals = sorted(s.value for s in pts)
    if how == "mean":
        v = sum(vals) / len(vals)
    elif how == "max":
        v = vals[-1]
    elif how == "p95":
        pos = (len(vals) - 1) * 0.95
        lo = math.floor(pos)
        hi = math.ceil(pos)
        v = vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)
    else:
        raise ModelError({key: f"unknown estimator {how!r}"})
    return Estimate(v, len(pts), f"{how} of {len(pts)} samples")


def from_series(
    net: Network,
    nodes: Mapping[str, NodeSeries] | None = None,
    links: Mapping[tuple[str, str], Sequence[Sample]] | None = None,
    *,
    how: Estimator = "p95",
    now: float | None = None,
    window_s: float | None = None,
    managed: Mapping[str, Usage] | None = None,
) -> Monitoring:
    """Background loads from series. Figures without a sample in the window keep their
    value in `net` (the note says so); `managed` is subtracted from what nodes use."""
    out = Monitoring()
    managed = managed or {}
    unknown = {f"nodes[{n}]": "unknown node" for n in (nodes or {}) if n not in net.index}
    for a, b in links or {}:
        try:
            net.link_index(a, b)
        except KeyError:
            unknown[f"links[{a}--{b}]"] = "no such link"
    if unknown:
        raise ModelError(unknown)
    for name, ns in (nodes or {}).items():
        before = net.infra.nodes[net.index[name]].load
        got: list[float] = []
        parts = []
        for attr in ("cpu", "memory_mb", "storage_mb"):
            key = f"nodes[{name}].{attr}"
            e = estimate(getattr(ns, attr), how=how, now=now, window_s=window_s, key=key)
            if e is None:
                got.append(getattr(before, attr))
                parts.append(f"{attr}: no sample, kept")
                continue
            mine = getattr(managed.get(name, Usage()), attr)
            got.append(max(e.value - mine, 0.0))
            parts.append(f"{attr}: {e.how}")
        out.nodes[name] = Usage(*got)
        out.notes[f"nodes[{name}]"] = "; ".join(parts)
    for (a, b), series in (links or {}).items():
        key = f"links[{a}--{b}]"
        e = estimate(series, how=how, now=now, window_s=window_s, key=key)
        if e is None:
            out.notes[key] = "no sample in the window: figure kept"
            continue
        out.links[(a, b)] = e.value
        out.notes[key] = e.how
    return out


def diurnal(hour: float, low: float, high: float, peak_hour: float = 15.0) -> float:
    """A simulated day/night load: `high` at `peak_hour`, `low` twelve hours later,
    a cosine in between (hours of the day, wrapping at 24)."""
    phase = 2 * math.pi * ((hour - peak_hour) % 24.0) / 24.0
    return low + (high - low) * (1 + math.cos(phase)) / 2
