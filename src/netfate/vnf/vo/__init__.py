"""Virtual Objects (the INPUT paper's VOs) in a PaaS-like host, and their state-only
migration: core.py (sans-I/O objects and sync), wire.py (users' requests),
function.py (the host, a netfate Function), stream.py (a user's request stream)."""
