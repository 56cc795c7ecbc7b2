"""Live streaming for small content providers (the live-streaming-delivery-tree
paper): a front-end of providers, scheduled events, live contents, recordings and
reservations, and a back-end that builds and prunes each content's delivery tree
(acquirer at the provider's PE, forwarders at branch points, edge streamers on
viewers' PEs) by the paper's rule.

See README.md. Plugs into the platform by its contract, SERVICE.
"""

from __future__ import annotations

from pathlib import Path

from netfate.contract import Demo, Loop, Role, Service

from . import notices, reconcile, web
from .api import router
from .functions import DESCRIPTORS

OPERATOR, PROVIDER, USER, PUBLIC = Role.OPERATOR, Role.PROVIDER, Role.USER, Role.PUBLIC
# The web apps' routes (web.py) beside the API's: one router, one prefix.
router.include_router(web.router)
EVERYONE = (OPERATOR, PROVIDER, USER)

SERVICE = Service(
    name="streaming",
    summary="Live streaming for small content providers: scheduled events, a delivery "
    "tree (acquirer, forwarders, edge streamers) built and pruned on demand by the paper's "
    "rule, recordings and reservations.",
    folder=Path(__file__).parent,
    api=router,
    roles={
        "POST /providers": (OPERATOR,),
        "GET /providers": EVERYONE,
        "POST /events": (OPERATOR, PROVIDER),
        "GET /events": EVERYONE,
        "GET /events/{eid}": EVERYONE,
        "POST /events/{eid}/start": (OPERATOR, PROVIDER),
        "POST /events/{eid}/stop": (OPERATOR, PROVIDER),
        "POST /events/{eid}/cancel": (OPERATOR, PROVIDER),
        # The flow's URL carries its passphrase or stream key: its provider's alone.
        "GET /events/{eid}/ingest": (PROVIDER,),
        "GET /contents": EVERYONE,
        "POST /contents/{cid}/viewers": (OPERATOR, USER),
        # Each its own: the operator all, a user its devices, a provider its contents'
        # viewers in the abstract (api.list_viewers).
        "GET /contents/{cid}/viewers": EVERYONE,
        "DELETE /contents/{cid}/viewers/{client}": (OPERATOR, USER),
        "GET /tree": (OPERATOR,),
        "PUT /settings": (OPERATOR,),
        # Where the viewers' captive portals are kept: the operator's network.
        "GET /portals": (OPERATOR,),
        "PUT /portals": (OPERATOR,),
        "POST /recordings": (USER,),
        "GET /recordings": (OPERATOR, USER),
        "DELETE /recordings/{rid}": (OPERATOR, USER),
        "POST /recordings/{rid}/play": (OPERATOR, USER),
        "DELETE /recordings/{rid}/play": (OPERATOR, USER),
        "POST /reservations": (USER,),
        "GET /reservations": (OPERATOR, USER),
        "DELETE /reservations/{rid}": (OPERATOR, USER),
        # The user's app is behind sign-in: a browser without a session is sent to the
        # sign-in page (the guard's pages), as a new client is by its PE's captive portal.
        "GET /app": EVERYONE,
        # The studio and the apps' files: anyone's; their data is the caller's (below).
        "GET /studio": (PUBLIC,),
        "GET /app/hls.js": (PUBLIC,),
        "GET /app/manifest.webmanifest": (PUBLIC,),
        "GET /app/me": (PROVIDER, USER),
        "GET /app/recordings": (OPERATOR, USER),
        "DELETE /app/recordings/{rid}": (OPERATOR, USER),
        "GET /app/watched": (OPERATOR, USER),
    },
    descriptors=DESCRIPTORS,
    on_instance_event=notices.on_instance_event,
    loops=(Loop("tree", reconcile.step, interval_s=reconcile.INTERVAL_S, wake_on_change=True),),
    cli="netfate.services.streaming.cli:app",
    demos=(Demo("streaming", "netfate.services.streaming.demo"),),
    benches=("streaming", "streaming_relay", "streaming_join", "streaming_vod"),
    panels=("panel.js",),
    pages={"Live events (viewers)": "/app", "Live events (providers)": "/studio"},
    door=(
        "/app",
        "/studio",
        "/providers",
        "/events",
        "/contents",
        "/recordings",
        "/reservations",
    ),  # the users' pages and what they call
)

__all__ = ["SERVICE"]
