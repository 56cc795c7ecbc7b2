"""PNG figures of the HRH experiment, next to the paper's numbers.

- ``hrh-throughput.png``: Table I as bars, ours and the paper's, per setting
  (log scale: loopback and a 500 km shared access differ by orders of magnitude).
- ``hrh-rtt-series.png``: like the paper's Fig. 8, RTT of each sample in order.
- ``hrh-rtt-pdf.png``: like its Fig. 9, the RTT distribution per setting, with
  the paper's mean +- std drawn where it has one.

matplotlib is optional for the rest of netfate: imported here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_all(doc: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    settings: list[dict[str, Any]] = doc["settings"]
    names = [s["name"] for s in settings]
    written: list[Path] = []

    def panels() -> tuple[Any, list[Any]]:
        """A figure of one stacked panel per setting, sharing the x axis."""
        fig, axes = plt.subplots(
            len(settings), 1, figsize=(8, 2.2 * len(settings)), sharex=True, squeeze=False
        )
        return fig, list(axes[:, 0])

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        p = out / name
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)

    # Table I
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.2
    xs = range(len(settings))
    series = [
        ("write (ours)", [s["write_MBps"] for s in settings], "#1f77b4", None),
        ("read (ours)", [s["read_MBps"] for s in settings], "#ff7f0e", None),
        (
            "write (paper)",
            [(s["paper"] or {}).get("write_MBps", 0) for s in settings],
            "#aec7e8",
            "//",
        ),
        (
            "read (paper)",
            [(s["paper"] or {}).get("read_MBps", 0) for s in settings],
            "#ffbb78",
            "//",
        ),
    ]
    for k, (label, vals, color, hatch) in enumerate(series):
        ax.bar(
            [x + (k - 1.5) * width for x in xs], vals, width, label=label, color=color, hatch=hatch
        )
    caps = [s["link_payload_MBps"] for s in settings]
    for x, cap in zip(xs, caps, strict=True):
        if cap:
            ax.hlines(cap, x - 2 * width, x + 2 * width, colors="k", linestyles="dashed")
    ax.set_yscale("log")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("MB/s (10^6 B/s), log scale")
    ax.set_title("Mass storage over USB/IP (TLS): testbed vs paper (Table I); dashed: link payload")
    ax.legend(fontsize=8)
    save(fig, "hrh-throughput.png")

    # Fig. 8
    fig, axes_list = panels()
    for ax, s in zip(axes_list, settings, strict=True):
        ax.plot(s["rtt_ms"]["samples"], lw=0.7)
        ax.set_ylabel("RTT ms")
        ax.set_title(s["name"], fontsize=9)
    axes_list[-1].set_xlabel("sample")
    fig.suptitle("Serial ping/pong RTT per sample (cf. paper Fig. 8)")
    save(fig, "hrh-rtt-series.png")

    # Fig. 9: one panel per setting, log-spaced bins over all samples, so that
    # loopback (sub-ms) and 500 km (tens of ms) share one readable axis.
    import numpy as np

    every = [x for s in settings for x in s["rtt_ms"]["samples"]]
    for s in settings:
        pr = (s["paper"] or {}).get("rtt")
        if pr:
            every += [max(pr["mean"] - pr["std"], 1e-3), pr["mean"] + pr["std"]]
    bins = np.logspace(np.log10(max(min(every), 1e-3)), np.log10(max(every)), 60)
    fig, axes_list = panels()
    for k, (ax, s) in enumerate(zip(axes_list, settings, strict=True)):
        color = f"C{k}"
        ax.hist(s["rtt_ms"]["samples"], bins=bins, density=True, color=color, alpha=0.8)
        pr = (s["paper"] or {}).get("rtt")
        if pr:
            ax.axvspan(pr["mean"] - pr["std"], pr["mean"] + pr["std"], color="grey", alpha=0.2)
            ax.axvline(pr["mean"], color="k", ls="--", lw=1)
            title = f"{s['name']} (grey: paper's {s['paper']['name']}, mean +- std)"
        else:
            title = f"{s['name']} (the paper has no RTT for this setting)"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("density")
    axes_list[-1].set_xscale("log")
    axes_list[-1].set_xlabel("RTT ms (log)")
    fig.suptitle("Serial ping/pong RTT distribution (cf. paper Fig. 9)")
    save(fig, "hrh-rtt-pdf.png")
    return written
