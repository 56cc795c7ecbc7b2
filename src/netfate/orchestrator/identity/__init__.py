"""Who may do what (DESIGN.md, convention 12): accounts, credentials, enforcement.

    tokens.Principal     who a request is from: name, role, node (agents), how
    guard.PrincipalDep   a handler's parameter that gives it the request's Principal
    guard.enforce        the app's one dependency that checks every route's roles
    guard.WebSessionDep  a PUBLIC handler's parameter: the web session's principal, if any
    guard.audit_into     each state-changing request's audit line (RequestServed), written
                         by its own first commit (guard.Audit: a request that has none)
    accounts             create, sign in (throttled), disable, reset; machine credentials
    passwords            argon2id; earlier PBKDF2 hashes checked and upgraded; a verified
                         cache for services that check the same password often (RADIUS)
    routes               /api/v1/auth/* and /api/v1/accounts*

A service's handler that needs its caller asks for ``p: PrincipalDep`` and checks
ownership itself (``p.owns(row.owner)``: an operator owns everything); the roles
its contract declares are already enforced when the handler runs; ``owned(p,
row.owner, what)`` answers 404 for a row that is not the caller's.
"""

from netfate.orchestrator.identity.guard import PrincipalDep, WebSessionDep, current, owned
from netfate.orchestrator.identity.tokens import Principal

__all__ = ["Principal", "PrincipalDep", "WebSessionDep", "current", "owned"]
