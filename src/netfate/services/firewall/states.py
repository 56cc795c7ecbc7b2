"""A user's session, as a transition table (DESIGN.md convention 4).

    offline ──login──▶ online ──login (again, or at another CPE)──▶ online
       ▲                 │
       └────release──────┘  (logout, Accounting Stop, idle or session timeout, deletion)

`offline`  no session: no firewall runs for the user (the paper's rule (a)).
`online`   logged in at `access_node`; their firewall runs there or is on its way.

A login while online is the paper's rule (c): the user moved (or logged in again at
the same CPE), and the firewall follows. A release of an offline user is illegal:
every caller releases only an online one, so a second release would be a bug (it
would send a second round of Disconnect-Requests). `firewall_users.status` holds
the value; an illegal change raises IllegalSessionTransition (HTTP 409).
"""

from __future__ import annotations

from enum import StrEnum

from netfate.orchestrator.nfv.errors import Conflict


class UserStatus(StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"


U = UserStatus

TRANSITIONS: dict[UserStatus, frozenset[UserStatus]] = {
    U.OFFLINE: frozenset({U.ONLINE}),
    U.ONLINE: frozenset({U.ONLINE, U.OFFLINE}),
}


class IllegalSessionTransition(Conflict):
    """A change of a user's session the table does not allow."""

    def __init__(self, current: UserStatus, target: UserStatus) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        super().__init__(
            f"a user's session cannot go from '{current}' to '{target}'; "
            f"allowed from '{current}': {allowed}"
        )
        self.current = current
        self.target = target


def check_session_transition(current: str, target: UserStatus) -> UserStatus:
    """`target` if the table allows it from `current` (a stored value); else raise.
    A value the table does not know (a row written by hand) counts as offline."""
    try:
        now = UserStatus(current)
    except ValueError:
        now = U.OFFLINE
    if target not in TRANSITIONS[now]:
        raise IllegalSessionTransition(now, target)
    return target
