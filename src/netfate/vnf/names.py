"""The name an instance's process gives itself, which the agent recognises in /proc."""

from __future__ import annotations


def process_name(instance: str) -> str:
    """The name a forked instance gives itself (at most 15 bytes: the kernel's limit)."""
    return f"nf-{instance}"[:15]
