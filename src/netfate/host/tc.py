"""Traffic control: rate shaping (TBF) and, where the kernel has it, netem.

Shaping goes through pyroute2 netlink. netem goes through `tc` argv: it is
absent from some kernels (this machine's), so callers probe once with
`netem_available` and fall back to the userspace link emulator.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from netfate.host import links as _links
from netfate.host.netns import CommandError, run_in

__all__ = ["clear", "impair", "netem_available", "qdisc_kinds", "shape", "shape_many", "tbf_burst"]

# TBF queue: packets may wait this long before being dropped (bufferbloat bound).
TBF_LATENCY = "50ms"


def tbf_burst(rate_bps: int, mtu: int = 1500) -> int:
    """Bucket size in bytes: 4 ms worth of rate (one tick at HZ=250), at least two frames."""
    return max(rate_bps // 8 // 250, 2 * (mtu + 14) + 64)


def _shape(ipr: Any, index: int, rate_bps: int, mtu: int) -> None:
    ipr.tc(
        "replace",
        "tbf",
        index=index,
        handle="1:",
        rate=f"{rate_bps}bit",
        burst=tbf_burst(rate_bps, mtu),
        latency=TBF_LATENCY,
    )


def shape(ns: str | None, ifname: str, rate_bps: int, mtu: int = 1500) -> None:
    """Limit egress of `ifname` to `rate_bps` with a TBF root qdisc."""
    shape_many(ns, [(ifname, rate_bps)], mtu)


def shape_many(ns: str | None, items: Iterable[tuple[str, int]], mtu: int = 1500) -> None:
    """`shape` for many interfaces of one namespace over one netlink handle."""
    with _links.rtnl(ns) as ipr:
        for ifname, rate in items:
            _shape(ipr, _links.link_index(ipr, ns, ifname), rate, mtu)


def clear(ns: str | None, ifname: str) -> None:
    with _links.rtnl(ns) as ipr:
        try:
            ipr.tc("del", index=_links.link_index(ipr, ns, ifname), handle="0:", parent=0xFFFFFFFF)
        except NetlinkError as e:
            if e.code not in (errno.ENOENT, errno.EINVAL):
                raise


def qdisc_kinds(ns: str | None, ifname: str) -> list[str]:
    with _links.rtnl(ns) as ipr:
        index = _links.link_index(ipr, ns, ifname)
        return [str(m.get("TCA_KIND")) for m in ipr.get_qdiscs(index=index)]


def netem_available(ns: str | None) -> bool:
    """Probe once: can a netem qdisc be attached (on `lo` of `ns`, then removed)?"""
    try:
        run_in(
            ns, ["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "netem", "delay", "1ms"]
        )
    except CommandError:
        return False
    run_in(ns, ["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
    return True


def impair(
    ns: str | None,
    ifname: str,
    *,
    delay_us: int,
    loss: float,
    rate_bps: int | None = None,
    mtu: int = 1500,
    limit: int = 10000,
) -> None:
    """netem delay/loss at the root of `ifname`, TBF under it when shaped (needs netem)."""
    argv = ["tc", "qdisc", "replace", "dev", ifname, "root", "handle", "1:", "netem"]
    argv += ["limit", str(limit), "delay", f"{delay_us}us"]
    if loss > 0:
        argv += ["loss", f"{loss * 100:.6f}%"]
    run_in(ns, argv)
    if rate_bps is not None:
        burst = str(tbf_burst(rate_bps, mtu))
        tbf = ["tbf", "rate", f"{rate_bps}bit", "burst", burst, "latency", TBF_LATENCY]
        run_in(
            ns, ["tc", "qdisc", "replace", "dev", ifname, "parent", "1:1", "handle", "10:", *tbf]
        )
