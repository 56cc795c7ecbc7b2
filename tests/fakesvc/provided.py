"""A capability the fake service provides (test_capabilities.py): loaded only when
another asks for it."""

from __future__ import annotations


def echo(word: str) -> str:
    return f"fakesvc heard {word}"
