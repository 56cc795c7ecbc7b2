"""Sans-I/O RADIUS (RFC 2865, 2866, 3579, 5176): packet codec, server core, client core,
and the NAS side of Dynamic Authorization (Disconnect)."""

from netfate.proto.radius.client import ClientCore
from netfate.proto.radius.dynauth import DasCore
from netfate.proto.radius.errors import RadiusError
from netfate.proto.radius.events import (
    AccessRequested,
    AccountingReceived,
    DisconnectRequested,
    PacketDropped,
    RequestTimedOut,
    ResponseReceived,
)
from netfate.proto.radius.packet import (
    AcctStatus,
    Attr,
    Code,
    ErrorCause,
    Packet,
    TerminateCause,
    decode,
)
from netfate.proto.radius.server import ServerCore

__all__ = [
    "AccessRequested",
    "AccountingReceived",
    "AcctStatus",
    "Attr",
    "ClientCore",
    "Code",
    "DasCore",
    "DisconnectRequested",
    "ErrorCause",
    "Packet",
    "PacketDropped",
    "RadiusError",
    "RequestTimedOut",
    "ResponseReceived",
    "ServerCore",
    "TerminateCause",
    "decode",
]
