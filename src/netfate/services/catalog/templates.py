"""Publishing: a checked descriptor decomposed into stored templates (seed, IV).

A published version is one `catalog_chains` row (its SLA, its YAML as sent) and
one template per block (`catalog_blocks`, in chain order) and per relationship
(`catalog_talks`). Nothing is allocated: instances exist only for subscriptions.
Versions only go up; a chain's name belongs to the provider who first published it.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.orchestrator.nfv.errors import Conflict
from netfate.store.events import record

from . import conduit as cd
from .descriptor import DescriptorError, Function, check_against, parse
from .events import ChainPublished
from .tables import CatalogBlockRow, CatalogChainRow, CatalogTalkRow


class Impossible(DescriptorError):
    """Valid, but beyond what the platform's nodes can ever offer."""


def hosting(session: Session) -> list[tuple[float, float, float, float]]:
    """(cpu, memory, storage, availability) of each node that can host."""
    infra = cd.infrastructure(session)
    kinds = {k.name: k for k in infra.kinds}
    return [
        (
            n.cpu, n.memory_mb, n.storage_mb,
            n.availability if n.availability is not None else kinds[n.kind].availability,
        )
        for n in infra.nodes
        if kinds[n.kind].hosts
    ]  # fmt: skip


def publish(
    session: Session, provider: str, text: str, functions: dict[str, Function]
) -> CatalogChainRow:
    """Check `text` and store it as the chain's next version (the caller commits).
    DescriptorError (keyed) when invalid, Impossible when no node could run it,
    Conflict when the name is another provider's or the version does not go up."""
    desc = parse(text, functions)
    impossible = check_against(desc, hosting(session))
    if impossible:
        raise Impossible(impossible)
    newest = session.scalars(
        select(CatalogChainRow)
        .where(CatalogChainRow.name == desc.name)
        .order_by(CatalogChainRow.version.desc())
        .limit(1)
    ).first()
    if newest is not None and newest.provider != provider:
        raise Conflict(f"chain {desc.name!r} belongs to another provider")
    latest = newest.version if newest is not None else 0
    version = desc.version if desc.version is not None else latest + 1
    if version <= latest:
        raise Conflict(f"version {version} of {desc.name!r}: versions only go up (newest {latest})")
    row = CatalogChainRow(
        name=desc.name, version=version, provider=provider, summary=desc.summary,
        user_mbps=desc.user_mbps, latency_ms=desc.latency_ms, availability=desc.availability,
        document={**desc.to_dict(), "version": version}, source=text,
        published_at=time.time(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    for i, b in enumerate(desc.blocks):
        session.add(
            CatalogBlockRow(
                chain=row.id, position=i, name=b.name, function=b.function, cpu=b.cpu,
                memory_mb=b.memory_mb, storage_mb=b.storage_mb,
            )
        )  # fmt: skip
    for i, t in enumerate(desc.talks):
        session.add(CatalogTalkRow(chain=row.id, position=i, a=t.a, b=t.b, mbps=t.mbps))
    record(session, ChainPublished(desc.name, version, provider))
    session.flush()
    return row
