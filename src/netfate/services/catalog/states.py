"""A subscription's states, as a table (DESIGN.md, convention 4).

    active  --(user moved / node changed: re-placed)-->  active
    active  --(upgrade to another version)----------->  active
    active  --(unsubscribe)-------------------------->  ended

A subscription exists only once its chain is placed and its instances are
asked for: a refused subscription is never stored (nothing is half-deployed),
so there is no "requested" or "refused" state. An ended subscription keeps its
row and its decisions (the provider's history); its instances stop.
"""

from __future__ import annotations

import enum


class SubscriptionState(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


S = SubscriptionState

TRANSITIONS: dict[SubscriptionState, frozenset[SubscriptionState]] = {
    S.ACTIVE: frozenset({S.ACTIVE, S.ENDED}),
    S.ENDED: frozenset(),
}


class IllegalSubscriptionTransition(Exception):
    def __init__(self, current: SubscriptionState, target: SubscriptionState) -> None:
        self.current, self.target = current, target
        super().__init__(f"a subscription that is {current} cannot become {target}")


def check(current: SubscriptionState, target: SubscriptionState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalSubscriptionTransition(current, target)
