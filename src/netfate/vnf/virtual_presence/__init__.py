"""Virtual Presence VNF (seed section III): one ATT, a kernel fast path and a Python reference."""

from .att import ATT, ATTError, allocate_aliases
from .translator import Dropped, Forward, Ignored, Role, Side, Translator

__all__ = [
    "ATT",
    "ATTError",
    "Dropped",
    "Forward",
    "Ignored",
    "Role",
    "Side",
    "Translator",
    "allocate_aliases",
]
