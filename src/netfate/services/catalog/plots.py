"""PNG figures of ``netfate experiment migration``, next to the paper's relations.

- ``migration-time.png``: like the paper's Figure 4 (a) and (b), migration time
  against background load, VO and whole instance, (a) images pre-deployed, (b)
  images transferred with the migration (log scale: they differ by orders).
- ``migration-downtime.png``: downtime per kind, with the paper's VM band
  (0.5-1 s) and its PaaS bound (1 ms).
- ``migration-bytes.png``: what each kind moved, by part.

The ``platform`` kind (the agents' own move, over their channel across the link) is
drawn with the pre-deployed ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_all(doc: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    trials: list[dict[str, Any]] = doc["trials"]
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        p = out / name
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)

    def series(kind: str, pre: bool, key: str) -> tuple[list[float], list[float]]:
        pts = sorted(
            (t["load"] * 100, t[key])
            for t in trials
            if t["kind"] == kind and t["predeployed"] == pre
        )
        return [x for x, _ in pts], [y for _, y in pts]

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, pre, title in (
        (axes[0], True, "(a) pre-deployed images"),
        (axes[1], False, "(b) images transferred"),
    ):
        for kind, label, marker in (
            ("vo", "PaaS: 10 VOs", "o"),
            ("instance", "whole instance", "s"),
            ("platform", "platform: agents' state-only move", "^"),
        ):
            xs, ys = series(kind, pre, "migration_s")
            ax.plot(xs, [y * 1e3 for y in ys], marker=marker, ls="", label=label)
        ax.set_yscale("log")
        ax.set_xlabel("background load, % of link capacity")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("migration time, ms (log)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Migration time, base RTT 5 ms (cf. the paper's Figure 4)")
    save(fig, "migration-time.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    names, values = [], []
    for kind in ("vo", "instance", "platform"):
        for pre in (True, False):
            ys = [t["downtime_ms"] for t in trials if t["kind"] == kind and t["predeployed"] == pre]
            if ys:
                names.append(f"{kind}\n{'pre' if pre else 'transfer'}")
                values.append(ys)
    for k, ys in enumerate(values):
        ax.plot([k] * len(ys), [max(y, 1e-3) for y in ys], "o", alpha=0.7)
    ax.axhspan(500, 1000, color="grey", alpha=0.2, label="paper: VM downtime 0.5-1 s")
    ax.axhline(1.0, color="k", ls="--", lw=1, label="paper: PaaS below 1 ms")
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    ax.set_ylabel("downtime, ms (log; 0 drawn at 0.001)")
    ax.set_title("Downtime: a 10 kHz request stream (platform: the agents' stamps)", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, "migration-downtime.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    labels: list[str] = []
    bottoms: list[float] = []
    parts = sorted({p for t in trials for p in t["parts"]})
    groups = [(k, pre) for k in ("vo", "instance", "platform") for pre in (True, False)]
    groups = [(k, pre) for k, pre in groups if any(
        t["kind"] == k and t["predeployed"] == pre for t in trials
    )]  # fmt: skip
    for kind, pre in groups:
        labels.append(f"{kind}\n{'pre' if pre else 'transfer'}")
        bottoms.append(0.0)
    for part in parts:
        heights = []
        for kind, pre in groups:
            ts = [t for t in trials if t["kind"] == kind and t["predeployed"] == pre]
            heights.append(sum(t["parts"].get(part, 0) for t in ts) / max(1, len(ts)) / 1e6)
        ax.bar(range(len(groups)), heights, bottom=bottoms, label=part)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(groups)), labels)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylabel("MB moved (mean per migration)")
    ax.set_title("What moves", fontsize=10)
    ax.legend(fontsize=8)
    save(fig, "migration-bytes.png")
    return written
