"""A small edge network for the placement optimiser's tests: cpe1 - pe1 - cpe2 (2 ms each
way) and a core switch behind pe1, whose figures make the optimum easy to work out by
hand; and a two-block chain."""

from __future__ import annotations

from netfate.orchestrator.engine import (
    Block,
    Chain,
    Infrastructure,
    Link,
    Node,
    NodeKind,
    Sla,
    Talk,
)

KINDS = (
    NodeKind("cpe", idle_w=10, w_per_cpu=5, availability=0.99),
    NodeKind("pe", idle_w=50, w_per_cpu=2, availability=0.999),
    NodeKind("core", idle_w=100, w_per_cpu=0, hosts=False),
)


def infra(*, pe_pinned: bool = False, cpe_link: float = 100) -> Infrastructure:
    return Infrastructure(
        KINDS,
        (
            Node("cpe1", "cpe", 1, 1024, 100),
            Node("cpe2", "cpe", 1, 1024, 100),
            Node("pe1", "pe", 8, 8192, 1000, pinned=pe_pinned),
            Node("core", "core", 0, 0),
        ),
        (
            Link("cpe1", "pe1", cpe_link, 2),
            Link("cpe2", "pe1", cpe_link, 2),
            Link("pe1", "core", 1000, 1),
        ),
    )


FW = Chain(
    "fw",
    (Block("fw", 0.5, 128, 10), Block("store", 0.5, 256, 50)),
    (Talk("fw", "store", 10),),
    user_mbps=5,
    sla=Sla(rtt_ms=10, availability=0.98),
)
