"""What the sharing service provides the other services (its contract's ``provides``,
netfate.contract.Capabilities): they ask the platform for it by name and never
import this module.

``"personal-network"``: ``ensure_pn(session, user, node) -> (view, created, nodes)``
    Ensure that ``user`` (a PN's id is its owner's account name) has a Personal Network.
    With none, one is made at ``node`` (the node's first LAN) with its vHG, as
    ``POST /pns {"vhg": true}`` makes it; one that exists, wherever it is, is left as
    it is (idempotent). ``view``: the PN as ``GET /pns/{email}`` shows it;
    ``created``: whether it was made now; ``nodes``: those whose desired state
    changed (the caller wakes their agents). The caller commits. A refusal raises
    the platform's LifecycleError (BadRequest: not an account name, a node without a LAN;
    Conflict: the LAN is another's PN; NotFound: no such node; NoCapacity: no room
    for the vHG) after rows may have changed: call it under a savepoint.

``"personal-network-devices"``: ``set_pn_devices(session, user, refs) -> (view, devices,
problems, nodes)``
    Which of the hosts of ``user``'s PN's LAN join it: those ``refs`` name (a host's
    name or MAC; a declared or reported device of the PN may be named too, and stays
    in it either way). ``devices[i]``: the device ``refs[i]`` names (name, ip, mac,
    kind, source) or None; ``problems``: index -> why (unknown, named twice, another
    user's, on a LAN that is not the PN's), and then nothing changed; ``view``: the PN
    as ``GET /pns/{email}`` shows it; ``nodes``: whose desired state changed (shares
    into the PN follow its devices). NotFound (LifecycleError) if ``user`` has no PN.
    The caller commits.
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


def set_pn_devices(
    session: Session, user: str, refs: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any] | None], dict[int, str], set[str]]:
    """The ``personal-network-devices`` capability (the module's docstring)."""
    pn = wf.get_pn(session, user)
    devices, problems, touched = wf.set_members(session, pn, refs)
    return (
        pn_view(session, pn),
        [d.to_dict() if d is not None else None for d in devices],
        problems,
        touched,
    )
