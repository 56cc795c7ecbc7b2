"""Sans-I/O RADIUS (RFC 2865, 2866, 3579): packet codec, server core, client core."""

from netfate.proto.radius.client import ClientCore
from netfate.proto.radius.errors import RadiusError
from netfate.proto.radius.events import (
    AccessRequested,
    AccountingReceived,
    PacketDropped,
    RequestTimedOut,
    ResponseReceived,
)
from netfate.proto.radius.packet import AcctStatus, Attr, Code, Packet, decode
from netfate.proto.radius.server import ServerCore

__all__ = [
    "AccessRequested",
    "AccountingReceived",
    "AcctStatus",
    "Attr",
    "ClientCore",
    "Code",
    "Packet",
    "PacketDropped",
    "RadiusError",
    "RequestTimedOut",
    "ResponseReceived",
    "ServerCore",
    "decode",
]
