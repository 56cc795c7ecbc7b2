"""What the sharing service provides the other services (its contract's ``provides``,
netfate.contract.Capabilities): they ask the platform for it by name and never
import this module.

``"personal-network"``: ``ensure_pn(session, user, node) -> (view, created, nodes)``
    Ensure that ``user`` (a PN's id is its owner's email) has a Personal Network.
    With none, one is made at ``node`` (the node's first LAN) with its vHG, as
    ``POST /pns {"vhg": true}`` makes it; one that exists, wherever it is, is left as
    it is (idempotent). ``view``: the PN as ``GET /pns/{email}`` shows it;
    ``created``: whether it was made now; ``nodes``: those whose desired state
    changed (the caller wakes their agents). The caller commits. A refusal raises
    the platform's LifecycleError (BadRequest: not an email, a node without a LAN;
    Conflict: the LAN is another's PN; NotFound: no such node; NoCapacity: no room
    for the vHG) after rows may have changed: call it under a savepoint.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from . import network
from . import workflow as wf
from .tables import PersonalNetworkRow


def pn_view(session: Session, pn: PersonalNetworkRow) -> dict[str, Any]:
    """The PN; `vhg_paths`: are its vHG's intents in (they wait for its port)?"""
    out = wf.pn_view(session, pn)
    out["vhg_paths"] = network.vhg_ready(session, pn) if pn.vhg_instance else None
    return out


def ensure_pn(session: Session, user: str, node: str) -> tuple[dict[str, Any], bool, set[str]]:
    """The ``personal-network`` capability (the module's docstring)."""
    pn = session.get(PersonalNetworkRow, user)
    if pn is not None:
        return pn_view(session, pn), False, set()
    pn = wf.create_pn(session, user, node)
    session.flush()
    network.withdraw_lans(session)  # the PN's LAN is isolated from now on
    _inst, touched = wf.start_vhg(session, pn)
    return pn_view(session, pn), True, touched
