"""The forwarder of the delivery tree: RTP/MPEG-TS in, one copy per next hop out.

Where the switches can duplicate, the SDN does it with OpenFlow groups; this
function is for the branch points where they cannot. Each *route* is one
content: datagrams arriving on its port (RTCP on port + 1) go through the relay
core (garbage, foreign payload types, duplicates and stray sources are counted
and dropped) and are copied to the route's next hops (RTP to each hop's port,
RTCP to its port + 1).

Config::

    {"routes": [{"id": "X", "port": 6000,
                 "next_hops": [{"host": "10.0.1.5", "port": 7000}, ...],
                 "sources": ["10.0.0.2"]}],          # optional: accepted senders
     "bind": "0.0.0.0", "rtcp": true, "source_timeout": 10}

``configure`` applies any change in place: next hops are swapped between two
datagrams (a hop kept misses nothing), new routes open their ports before
anything else changes (a port in use refuses the whole configuration), removed
routes close theirs. State (export/import): the cumulative counters per route,
so figures do not restart at a migration, and the event outbox.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netfate.vnf.runtime import Context

from . import config as c
from .base import StreamingFunction, StreamInput, open_all
from .net import Fanout
from .path import RelaySettings, RtpPath

MAX_ROUTES = 64


@dataclass(frozen=True)
class RouteConfig:
    id: str
    port: int
    next_hops: tuple[c.Hop, ...]
    sources: frozenset[str] | None

    @classmethod
    def parse(cls, value: Any, where: str) -> RouteConfig:
        d = c.obj(value, where, ("id", "port", "next_hops", "sources"))
        return cls(
            id=c.name(d, "id", where),
            port=c.integer(d, "port", where, lo=1, hi=65534),
            next_hops=c.hops(d, "next_hops", where),
            sources=c.addresses(d, "sources", where),
        )


@dataclass(frozen=True)
class RelayConfig:
    routes: tuple[RouteConfig, ...]
    bind: str = "0.0.0.0"
    rtcp: bool = True
    relay: RelaySettings = field(default_factory=RelaySettings)

    @classmethod
    def parse(cls, value: Any) -> RelayConfig:
        d = c.obj(value, "config", ("routes", "bind", "rtcp", "source_timeout"))
        routes = [
            RouteConfig.parse(r, f"config.routes[{i}]")
            for i, r in enumerate(c.listed(d, "routes", "config", max_items=MAX_ROUTES))
        ]
        c.unique(routes, lambda r: r.id, "config.routes", "route")
        rtcp = c.boolean(d, "rtcp", "config", default=True)
        ports = [p for r in routes for p in ((r.port, r.port + 1) if rtcp else (r.port,))]
        c.unique(ports, lambda p: p, "config.routes", "port (RTP or RTCP)")
        return cls(
            routes=tuple(routes),
            bind=c.address(d.get("bind", "0.0.0.0"), "config.bind"),
            rtcp=rtcp,
            relay=RelaySettings(
                source_timeout=c.number(d, "source_timeout", "config", lo=1, hi=3600, default=10.0)
            ),
        )


class Route:
    def __init__(self, cfg: RouteConfig, fn: Relay) -> None:
        self.cfg = cfg
        self.path = RtpPath(Fanout(fn.sender, cfg.next_hops), fn.cfg.relay, sources=cfg.sources)
        self.input = StreamInput(fn, cfg.port, self.path, bind=fn.cfg.bind, rtcp=fn.cfg.rtcp)
        self.carried: dict[str, int] = {}
        """Counters of the peer this route's state was imported from."""

    def totals(self) -> dict[str, int]:
        mine = self.path.relay.counters()
        keys = set(mine) | set(self.carried)
        return {k: mine.get(k, 0) + self.carried.get(k, 0) for k in sorted(keys)}


class Relay(StreamingFunction):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = RelayConfig.parse(ctx.config)
        self.routes: dict[str, Route] = {}

    async def start(self) -> None:
        routes = [Route(rc, self) for rc in self.cfg.routes]
        open_all(r.input for r in routes)
        self.routes = {r.cfg.id: r for r in routes}
        await super().start()

    async def stop(self) -> None:
        for r in self.routes.values():
            r.input.close()
        await super().stop()

    def tick(self, now: float) -> None:
        for r in self.routes.values():
            r.path.poll(now)
            r.path.take_events()

    def configure(self, config: dict[str, Any]) -> bool:
        new = RelayConfig.parse(config)
        if (new.bind, new.rtcp, new.relay) != (self.cfg.bind, self.cfg.rtcp, self.cfg.relay):
            return False  # sockets or cores of every route change: a restart
        old = dict(self.routes)
        keep = {rc.id for rc in new.routes if rc.id in old and old[rc.id].cfg.port == rc.port}
        # New ports first: if one cannot be opened nothing has changed yet. A route
        # moving to another port keeps the old one until the new one is open.
        fresh = {rc.id: Route(rc, self) for rc in new.routes if rc.id not in keep}
        open_all(r.input for r in fresh.values())
        for rid, r in old.items():
            if rid not in keep:
                r.input.close()
        routes: dict[str, Route] = {}
        for rc in new.routes:
            if rc.id in keep:
                r = old[rc.id]
                r.cfg = rc
                r.path.sources = rc.sources
                r.path.fanout.set_hops(rc.next_hops)
                routes[rc.id] = r
            else:
                routes[rc.id] = fresh[rc.id]
        self.routes = routes
        self.cfg = new
        return True

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        routes = {}
        for rid, r in self.routes.items():
            s = r.path.stats(now)
            s["counters"] = r.totals()
            routes[rid] = {"port": r.cfg.port, **s}
        return {**super().stats(), "routes": routes}

    def export_state(self) -> dict[str, Any]:
        return {
            **super().export_state(),
            "routes": {rid: {"counters": r.totals()} for rid, r in self.routes.items()},
        }

    def import_state(self, state: dict[str, Any]) -> None:
        super().import_state(state)
        routes = state.get("routes")
        if not isinstance(routes, Mapping):
            return
        for rid, r in self.routes.items():
            got = routes.get(rid)
            if isinstance(got, Mapping) and isinstance(got.get("counters"), Mapping):
                r.carried = {
                    str(k): int(v)
                    for k, v in got["counters"].items()
                    if isinstance(v, int) and not isinstance(v, bool)
                }
