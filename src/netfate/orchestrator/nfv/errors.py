from __future__ import annotations


class LifecycleError(Exception):
    """A request the platform refuses; `status` is the HTTP status the API answers."""

    status = 400


class NotFound(LifecycleError):
    status = 404


class Conflict(LifecycleError):
    status = 409


class NoCapacity(LifecycleError):
    status = 409
