"""The life of a share request, as a transition table (DESIGN.md convention 4).

    requested ──accept──▶ accepted ──VPs running──▶ active
        │                    │                        │
        ├──decline──▶ declined                        │
        ├──revoke───▶ revoked ◀───────revoke──────────┤
        └──────────▶ failed ◀──a VP failed / cannot be built

`requested`  PN1's owner asked to share a device with PN2; PN2's owner is notified.
`accepted`   PN2's owner accepted; the orchestrator launched VP2 in PN1 and VP1 in PN2.
`active`     both VPs run with the ATT and the overlay: the device is usable in PN2.
`declined`   PN2's owner said no (terminal).
`revoked`    either owner ended it; VPs, aliases, overlay and rules are removed (terminal).
`failed`     it could not be built or a VP failed; the VPs are removed (terminal).

Who may do what: only the recipient accepts or declines; either owner revokes.
An illegal transition raises IllegalShareTransition (HTTP 409).
"""

from __future__ import annotations

from enum import StrEnum

from netfate.orchestrator.nfv.errors import Conflict


class ShareState(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    ACTIVE = "active"
    REVOKED = "revoked"
    FAILED = "failed"


S = ShareState

TRANSITIONS: dict[ShareState, frozenset[ShareState]] = {
    S.REQUESTED: frozenset({S.ACCEPTED, S.DECLINED, S.REVOKED, S.FAILED}),
    S.ACCEPTED: frozenset({S.ACTIVE, S.REVOKED, S.FAILED}),
    S.ACTIVE: frozenset({S.REVOKED, S.FAILED}),
    S.DECLINED: frozenset(),
    S.REVOKED: frozenset(),
    S.FAILED: frozenset(),
}

# States whose VPs should exist.
BUILT: frozenset[ShareState] = frozenset({S.ACCEPTED, S.ACTIVE})
OPEN: frozenset[ShareState] = frozenset({S.REQUESTED, S.ACCEPTED, S.ACTIVE})


class IllegalShareTransition(Conflict):
    def __init__(self, current: ShareState, target: ShareState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (terminal)"
        super().__init__(
            f"share cannot go from '{current}' to '{target}'; allowed from '{current}': {allowed}"
        )
        self.current = current
        self.target = target


def check(current: ShareState, target: ShareState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalShareTransition(current, target)
