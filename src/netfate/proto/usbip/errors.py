"""The one exception type of the USB/IP core (DESIGN.md, convention 3)."""

from __future__ import annotations

import enum


class Reason(enum.Enum):
    """Why a peer's bytes (or a local call) were refused."""

    BAD_VERSION = "bad_version"
    UNKNOWN_CODE = "unknown_code"
    UNEXPECTED_MESSAGE = "unexpected_message"
    BAD_STATUS = "bad_status"
    BAD_STRING = "bad_string"
    TOO_MANY_DEVICES = "too_many_devices"
    TOO_MANY_INTERFACES = "too_many_interfaces"
    BAD_DEVID = "bad_devid"
    BAD_ENDPOINT = "bad_endpoint"
    BAD_DIRECTION = "bad_direction"
    BAD_LENGTH = "bad_length"
    BAD_ACTUAL_LENGTH = "bad_actual_length"
    BAD_ISO = "bad_iso"
    BAD_ISO_DESCRIPTOR = "bad_iso_descriptor"
    UNKNOWN_SEQNUM = "unknown_seqnum"
    DUPLICATE_SEQNUM = "duplicate_seqnum"
    TOO_MANY_URBS = "too_many_urbs"
    REPLY_AFTER_UNLINK = "reply_after_unlink"
    BUFFER_OVERFLOW = "buffer_overflow"
    TRUNCATED = "truncated"
    ILLEGAL_TRANSITION = "illegal_transition"
    CLOSED = "closed"


class UsbipProtocolError(Exception):
    """A USB/IP peer broke the protocol, or a local call broke the state machine.

    The connection that raised it is closed: its state is ``CLOSED`` and any further
    input raises again.  ``reason`` is machine-readable; ``str(err)`` is for humans.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
