"""RADIUS packets (RFC 2865 section 3, RFC 2866 section 3) and their security.

Packet layout, network byte order, struct format ``!BBH16s`` for the header:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Code      |  Identifier   |            Length             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    |                         Authenticator  (16 octets)            |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Attributes ...
    +-+-+-+-+-+-+-+-+-+-+-+-+-

Length covers the whole packet, 20..4096 (RFC 2865 section 3). Octets past Length
are padding and ignored; a datagram shorter than Length is discarded.

Each attribute (RFC 2865 section 5), struct format ``!BB`` then the value:

     0                   1                   2
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
    |     Type      |    Length     |  Value ...
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-

Length counts Type and Length too, so it is at least 2; the attributes must fill
the packet exactly.

Authenticators (all MD5, as the RFCs define them; "+" is concatenation):

- Access-Request: 16 random octets (RFC 2865 section 3).
- Responses: MD5(Code + Identifier + Length + RequestAuthenticator + Attributes
  + Secret) (RFC 2865 section 3).
- Accounting-Request: MD5(Code + Identifier + Length + 16 zero octets + Attributes
  + Secret) (RFC 2866 section 3).
- Disconnect-Request (and CoA-Request): computed as for an Accounting-Request
  (RFC 5176 section 3.5); Disconnect-ACK/NAK as any response, over the request's
  Request Authenticator.
- Message-Authenticator (type 80, RFC 3579 section 3.2): HMAC-MD5 keyed with the
  secret over the whole packet, with the attribute's own value as 16 zero octets and
  the Authenticator field as it is for an Access-Request, the Request Authenticator
  for a response (Disconnect-ACK/NAK included), and 16 zero octets for accounting
  packets and for Disconnect/CoA-Requests (as FreeRADIUS signs and checks them).
  It is computed before the response/accounting authenticator, which then covers it. The BlastRADIUS
  attack (CVE-2024-3596) forges responses by MD5 collision; a Message-Authenticator
  on every packet, verified, is its mitigation.
- User-Password (RFC 2865 section 5.2): the password, padded with zeros to a multiple
  of 16 (at most 128), XORed chunk by chunk with b1 = MD5(Secret + RA),
  bi = MD5(Secret + c(i-1)).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from netfate.proto.radius.errors import RadiusError

HEADER = struct.Struct("!BBH16s")
ATTR_HEADER = struct.Struct("!BB")
U32 = struct.Struct("!I")
MIN_LENGTH = 20
MAX_LENGTH = 4096
MAX_PASSWORD = 128
ZERO16 = bytes(16)


class Code(enum.IntEnum):
    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    # RFC 5176 (Dynamic Authorization): sent by a server to the NAS, on UDP 3799.
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


RESPONSES: dict[Code, tuple[Code, ...]] = {
    Code.ACCESS_REQUEST: (Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE),
    Code.ACCOUNTING_REQUEST: (Code.ACCOUNTING_RESPONSE,),
    Code.STATUS_SERVER: (Code.ACCESS_ACCEPT, Code.ACCOUNTING_RESPONSE),
    Code.DISCONNECT_REQUEST: (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK),
    Code.COA_REQUEST: (Code.COA_ACK, Code.COA_NAK),
}


class Attr(enum.IntEnum):
    """The attributes this package knows by name (others pass through as raw bytes)."""

    USER_NAME = 1
    USER_PASSWORD = 2
    NAS_IP_ADDRESS = 4
    NAS_PORT = 5
    SERVICE_TYPE = 6
    FRAMED_IP_ADDRESS = 8
    REPLY_MESSAGE = 18
    STATE = 24
    CLASS = 25
    SESSION_TIMEOUT = 27
    IDLE_TIMEOUT = 28
    CALLED_STATION_ID = 30
    CALLING_STATION_ID = 31
    NAS_IDENTIFIER = 32
    PROXY_STATE = 33
    ACCT_STATUS_TYPE = 40
    ACCT_DELAY_TIME = 41
    ACCT_INPUT_OCTETS = 42
    ACCT_OUTPUT_OCTETS = 43
    ACCT_SESSION_ID = 44
    ACCT_SESSION_TIME = 46
    ACCT_INPUT_PACKETS = 47
    ACCT_OUTPUT_PACKETS = 48
    ACCT_TERMINATE_CAUSE = 49
    EVENT_TIMESTAMP = 55
    NAS_PORT_TYPE = 61
    MESSAGE_AUTHENTICATOR = 80
    ERROR_CAUSE = 101


class AcctStatus(enum.IntEnum):
    START = 1
    STOP = 2
    INTERIM_UPDATE = 3


class TerminateCause(enum.IntEnum):
    """Acct-Terminate-Cause (RFC 2866 section 5.10), the values a portal uses."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    NAS_REQUEST = 10
    NAS_REBOOT = 11


class ErrorCause(enum.IntEnum):
    """Error-Cause (RFC 5176 section 3.6) of a Disconnect-/CoA-ACK or NAK."""

    RESIDUAL_SESSION_CONTEXT_REMOVED = 201
    INVALID_EAP_PACKET = 202
    UNSUPPORTED_ATTRIBUTE = 401
    MISSING_ATTRIBUTE = 402
    NAS_IDENTIFICATION_MISMATCH = 403
    INVALID_REQUEST = 404
    UNSUPPORTED_SERVICE = 405
    UNSUPPORTED_EXTENSION = 406
    INVALID_ATTRIBUTE_VALUE = 407
    ADMINISTRATIVELY_PROHIBITED = 501
    REQUEST_NOT_ROUTABLE = 502
    SESSION_CONTEXT_NOT_FOUND = 503
    SESSION_CONTEXT_NOT_REMOVABLE = 504
    OTHER_PROXY_PROCESSING_ERROR = 505
    RESOURCES_UNAVAILABLE = 506
    REQUEST_INITIATED = 507
    MULTIPLE_SESSION_SELECTION_UNSUPPORTED = 508


class Kind(enum.Enum):
    TEXT = "text"  # UTF-8, 1..253 octets
    STRING = "string"  # opaque octets
    INTEGER = "integer"  # 32-bit unsigned, struct "!I"
    ADDRESS = "address"  # IPv4, 4 octets


KINDS: dict[int, Kind] = {
    Attr.USER_NAME: Kind.TEXT,
    Attr.USER_PASSWORD: Kind.STRING,
    Attr.NAS_IP_ADDRESS: Kind.ADDRESS,
    Attr.NAS_PORT: Kind.INTEGER,
    Attr.SERVICE_TYPE: Kind.INTEGER,
    Attr.FRAMED_IP_ADDRESS: Kind.ADDRESS,
    Attr.REPLY_MESSAGE: Kind.TEXT,
    Attr.STATE: Kind.STRING,
    Attr.CLASS: Kind.STRING,
    Attr.SESSION_TIMEOUT: Kind.INTEGER,
    Attr.IDLE_TIMEOUT: Kind.INTEGER,
    Attr.CALLED_STATION_ID: Kind.TEXT,
    Attr.CALLING_STATION_ID: Kind.TEXT,
    Attr.NAS_IDENTIFIER: Kind.TEXT,
    Attr.PROXY_STATE: Kind.STRING,
    Attr.ACCT_STATUS_TYPE: Kind.INTEGER,
    Attr.ACCT_DELAY_TIME: Kind.INTEGER,
    Attr.ACCT_INPUT_OCTETS: Kind.INTEGER,
    Attr.ACCT_OUTPUT_OCTETS: Kind.INTEGER,
    Attr.ACCT_SESSION_ID: Kind.TEXT,
    Attr.ACCT_SESSION_TIME: Kind.INTEGER,
    Attr.ACCT_INPUT_PACKETS: Kind.INTEGER,
    Attr.ACCT_OUTPUT_PACKETS: Kind.INTEGER,
    Attr.ACCT_TERMINATE_CAUSE: Kind.INTEGER,
    Attr.EVENT_TIMESTAMP: Kind.INTEGER,
    Attr.NAS_PORT_TYPE: Kind.INTEGER,
    Attr.MESSAGE_AUTHENTICATOR: Kind.STRING,
    Attr.ERROR_CAUSE: Kind.INTEGER,
}

Value = str | int | bytes | ipaddress.IPv4Address


def encode_value(attr: int, value: Value) -> bytes:
    """The wire form of one attribute value, by the attribute's kind."""
    kind = KINDS.get(attr, Kind.STRING)
    if kind is Kind.INTEGER:
        if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
            raise RadiusError(f"attribute {attr} needs an integer 0..2^32-1, got {value!r}")
        return U32.pack(value)
    if kind is Kind.ADDRESS:
        try:
            return ipaddress.IPv4Address(value).packed
        except ValueError as e:
            raise RadiusError(f"attribute {attr} needs an IPv4 address: {e}") from None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    raise RadiusError(f"attribute {attr} needs text or bytes, got {type(value).__name__}")


def decode_value(attr: int, raw: bytes) -> Value:
    kind = KINDS.get(attr, Kind.STRING)
    if kind is Kind.INTEGER:
        if len(raw) != 4:
            raise RadiusError(f"attribute {attr}: integer of {len(raw)} octets")
        return int(U32.unpack(raw)[0])
    if kind is Kind.ADDRESS:
        if len(raw) != 4:
            raise RadiusError(f"attribute {attr}: address of {len(raw)} octets")
        return ipaddress.IPv4Address(raw)
    if kind is Kind.TEXT:
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise RadiusError(f"attribute {attr}: text is not UTF-8") from None
    return raw


@dataclass
class Packet:
    """A RADIUS packet: attributes kept in wire order as (type, raw value) pairs."""

    code: int
    identifier: int
    authenticator: bytes = ZERO16
    attributes: list[tuple[int, bytes]] = field(default_factory=list)

    # ------------------------------------------------------------ attributes

    def add(self, attr: int, value: Value) -> Packet:
        raw = encode_value(attr, value)
        if not 1 <= len(raw) <= 253:
            raise RadiusError(f"attribute {attr}: value of {len(raw)} octets (1..253)")
        self.attributes.append((int(attr), raw))
        return self

    def raw(self, attr: int) -> bytes | None:
        for t, v in self.attributes:
            if t == attr:
                return v
        return None

    def all_raw(self, attr: int) -> list[bytes]:
        return [v for t, v in self.attributes if t == attr]

    def get(self, attr: int) -> Value | None:
        raw = self.raw(attr)
        return None if raw is None else decode_value(attr, raw)

    def text(self, attr: int) -> str | None:
        v = self.get(attr)
        return v if isinstance(v, str) else None

    def integer(self, attr: int) -> int | None:
        v = self.get(attr)
        return v if isinstance(v, int) else None

    def decoded(self) -> Iterator[tuple[int, Value]]:
        for t, v in self.attributes:
            yield t, decode_value(t, v)

    # ------------------------------------------------------------ wire

    def attribute_bytes(self) -> bytes:
        return b"".join(ATTR_HEADER.pack(t, len(v) + 2) + v for t, v in self.attributes)

    def encode(self) -> bytes:
        body = self.attribute_bytes()
        length = MIN_LENGTH + len(body)
        if length > MAX_LENGTH:
            raise RadiusError(f"packet of {length} octets exceeds {MAX_LENGTH}")
        return HEADER.pack(self.code, self.identifier, length, self.authenticator) + body


def decode(data: bytes) -> Packet:
    """Parse one datagram; raise RadiusError on anything RFC 2865 section 3 rejects."""
    if len(data) < MIN_LENGTH:
        raise RadiusError(f"datagram of {len(data)} octets is shorter than a header")
    code, ident, length, auth = HEADER.unpack_from(data)
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise RadiusError(f"Length {length} outside {MIN_LENGTH}..{MAX_LENGTH}")
    if length > len(data):
        raise RadiusError(f"Length {length} but only {len(data)} octets arrived")
    attrs: list[tuple[int, bytes]] = []
    pos = MIN_LENGTH
    while pos < length:
        if pos + 2 > length:
            raise RadiusError("attribute header runs past Length")
        t, alen = ATTR_HEADER.unpack_from(data, pos)
        if alen < 2 or pos + alen > length:
            raise RadiusError(f"attribute {t} has bad Length {alen}")
        attrs.append((t, bytes(data[pos + 2 : pos + alen])))
        pos += alen
    return Packet(code, ident, bytes(auth), attrs)


# ---------------------------------------------------------------- authenticators


def _md5(*parts: bytes) -> bytes:
    h = hashlib.md5(usedforsecurity=False)
    for p in parts:
        h.update(p)
    return h.digest()


def _with_auth(wire: bytes, auth: bytes) -> bytes:
    return wire[:4] + auth + wire[20:]


def _zero_message_authenticator(wire: bytes) -> tuple[bytes, bytes | None]:
    """The packet with the Message-Authenticator value zeroed, and that value."""
    out = bytearray(wire)
    found: bytes | None = None
    pos = MIN_LENGTH
    length = len(wire)
    while pos + 2 <= length:
        t, alen = wire[pos], wire[pos + 1]
        if alen < 2:
            break
        if t == Attr.MESSAGE_AUTHENTICATOR:
            if found is not None:
                raise RadiusError("more than one Message-Authenticator")
            if alen != 18:
                raise RadiusError(f"Message-Authenticator of length {alen} (must be 18)")
            found = bytes(wire[pos + 2 : pos + 18])
            out[pos + 2 : pos + 18] = ZERO16
        pos += alen
    return bytes(out), found


def message_authenticator(wire_with_zero_ma: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, wire_with_zero_ma, hashlib.md5).digest()


def _fill_message_authenticator(wire: bytes, secret: bytes, auth_for_hmac: bytes) -> bytes:
    zeroed, found = _zero_message_authenticator(wire)
    if found is None:
        return wire
    mac = message_authenticator(_with_auth(zeroed, auth_for_hmac), secret)
    # Found by walking the attributes, not by searching bytes, so a value that
    # happens to look like the placeholder is never overwritten.
    pos = _ma_offset(wire)
    return wire[: pos + 2] + mac + wire[pos + 18 :]


def _ma_offset(wire: bytes) -> int:
    pos = MIN_LENGTH
    while pos + 2 <= len(wire):
        if wire[pos] == Attr.MESSAGE_AUTHENTICATOR:
            return pos
        pos += max(wire[pos + 1], 2)
    raise RadiusError("no Message-Authenticator to fill")


def _placeholder(pkt: Packet) -> None:
    """Put a zero Message-Authenticator first (BlastRADIUS advice: first attribute)."""
    pkt.attributes = [(t, v) for t, v in pkt.attributes if t != Attr.MESSAGE_AUTHENTICATOR]
    pkt.attributes.insert(0, (int(Attr.MESSAGE_AUTHENTICATOR), ZERO16))


def encode_request(pkt: Packet, secret: bytes, with_message_authenticator: bool = True) -> bytes:
    """Access-Request / Status-Server: `pkt.authenticator` must be the random RA."""
    if with_message_authenticator:
        _placeholder(pkt)
    wire = pkt.encode()
    if with_message_authenticator:
        wire = _fill_message_authenticator(wire, secret, pkt.authenticator)
    return wire


def encode_accounting_request(
    pkt: Packet, secret: bytes, with_message_authenticator: bool = True
) -> bytes:
    """Accounting-Request, and Disconnect-/CoA-Request (RFC 5176 section 3.5: the
    Request Authenticator is computed the same way). Sets `pkt.authenticator`."""
    if with_message_authenticator:
        _placeholder(pkt)
    pkt.authenticator = ZERO16
    wire = pkt.encode()
    if with_message_authenticator:
        wire = _fill_message_authenticator(wire, secret, ZERO16)
    auth = _md5(wire[:4], ZERO16, wire[20:], secret)
    pkt.authenticator = auth
    return _with_auth(wire, auth)


def encode_response(
    pkt: Packet,
    request_authenticator: bytes,
    secret: bytes,
    with_message_authenticator: bool = True,
    ma_vector: bytes | None = None,
) -> bytes:
    """A response. `ma_vector`: the Authenticator field while the Message-Authenticator
    is computed; the Request Authenticator by default (Access-* responses, RFC 3579),
    16 zero octets for an Accounting-Response, as FreeRADIUS computes and checks it."""
    if with_message_authenticator:
        _placeholder(pkt)
    wire = pkt.encode()
    if with_message_authenticator:
        vector = request_authenticator if ma_vector is None else ma_vector
        wire = _fill_message_authenticator(wire, secret, vector)
    auth = _md5(wire[:4], request_authenticator, wire[20:], secret)
    pkt.authenticator = auth
    return _with_auth(wire, auth)


def verify_message_authenticator(
    wire: bytes, secret: bytes, auth_for_hmac: bytes, required: bool
) -> bool:
    """True if a Message-Authenticator is present and right; raise if it is wrong or
    (when `required`) missing. `wire` is the datagram cut to its Length."""
    zeroed, found = _zero_message_authenticator(wire)
    if found is None:
        if required:
            raise RadiusError("Message-Authenticator missing")
        return False
    want = message_authenticator(_with_auth(zeroed, auth_for_hmac), secret)
    if not hmac.compare_digest(want, found):
        raise RadiusError("Message-Authenticator does not verify (wrong secret or forged)")
    return True


def verify_response(
    wire: bytes, request_authenticator: bytes, secret: bytes, require_ma: bool
) -> Packet:
    pkt = decode(wire)
    wire = wire[: HEADER.unpack_from(wire)[2]]
    want = _md5(wire[:4], request_authenticator, wire[20:], secret)
    if not hmac.compare_digest(want, pkt.authenticator):
        raise RadiusError("Response Authenticator does not verify")
    vector = ZERO16 if pkt.code == Code.ACCOUNTING_RESPONSE else request_authenticator
    verify_message_authenticator(wire, secret, vector, require_ma)
    return pkt


def _verify_as_accounting(
    pkt: Packet, wire: bytes, secret: bytes, what: str, ma_required: bool
) -> Packet:
    """The Request Authenticator of RFC 2866 section 3 (MD5 over the packet with 16
    zero octets in its place, then the secret; RFC 5176 section 3.5 takes it over),
    and the Message-Authenticator, its HMAC over the same zeroed field."""
    wire = wire[: HEADER.unpack_from(wire)[2]]
    want = _md5(wire[:4], ZERO16, wire[20:], secret)
    if not hmac.compare_digest(want, pkt.authenticator):
        raise RadiusError(f"{what} Request Authenticator does not verify (wrong secret?)")
    verify_message_authenticator(wire, secret, ZERO16, required=ma_required)
    return pkt


def verify_accounting_request(wire: bytes, secret: bytes) -> Packet:
    return _verify_as_accounting(decode(wire), wire, secret, "Accounting", ma_required=False)


def encode_disconnect_request(pkt: Packet, secret: bytes) -> bytes:
    """Disconnect-Request (RFC 5176): the Request Authenticator as for accounting, and
    a Message-Authenticator always (BlastRADIUS: the NAS here requires one)."""
    if pkt.code not in (Code.DISCONNECT_REQUEST, Code.COA_REQUEST):
        raise RadiusError(f"code {pkt.code} is not a Dynamic Authorization request")
    return encode_accounting_request(pkt, secret, with_message_authenticator=True)


def verify_dynauth_request(wire: bytes, secret: bytes) -> Packet:
    """A Disconnect-/CoA-Request: Request Authenticator (RFC 5176 section 3.5) and a
    required, valid Message-Authenticator (HMAC over the zeroed Authenticator field).
    Raises RadiusError on anything else, so a forged or unsigned request never passes."""
    pkt = decode(wire)
    if pkt.code not in (Code.DISCONNECT_REQUEST, Code.COA_REQUEST):
        raise RadiusError(f"code {pkt.code} is not a Dynamic Authorization request")
    return _verify_as_accounting(pkt, wire, secret, "Disconnect", ma_required=True)


def verify_access_request(wire: bytes, secret: bytes) -> Packet:
    """Access-Request with a required, verified Message-Authenticator (BlastRADIUS)."""
    pkt = decode(wire)
    wire = wire[: HEADER.unpack_from(wire)[2]]
    verify_message_authenticator(wire, secret, pkt.authenticator, required=True)
    return pkt


# ---------------------------------------------------------------- User-Password


def hide_password(password: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    if len(password) > MAX_PASSWORD:
        raise RadiusError(f"password of {len(password)} octets (at most {MAX_PASSWORD})")
    padded = password + bytes(-len(password) % 16 or (16 if not password else 0))
    out = bytearray()
    prev = request_authenticator
    for i in range(0, len(padded), 16):
        b = _md5(secret, prev)
        c = bytes(x ^ y for x, y in zip(padded[i : i + 16], b, strict=True))
        out += c
        prev = c
    return bytes(out)


def reveal_password(hidden: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    if not hidden or len(hidden) % 16 or len(hidden) > MAX_PASSWORD:
        raise RadiusError(f"User-Password of {len(hidden)} octets (a multiple of 16, <= 128)")
    out = bytearray()
    prev = request_authenticator
    for i in range(0, len(hidden), 16):
        c = hidden[i : i + 16]
        b = _md5(secret, prev)
        out += bytes(x ^ y for x, y in zip(c, b, strict=True))
        prev = c
    return bytes(out).rstrip(b"\x00")


# ---------------------------------------------------------------- Vendor-Specific

VENDOR_SPECIFIC = 26
# RFC 5612 sets Private Enterprise Number 32473 aside for documentation and
# examples; netfate's own attributes use it rather than squat on a real vendor's.
NETFATE_VENDOR = 32473
VSA_HEADER = struct.Struct("!IBB")  # Vendor-Id, vendor type, vendor length (RFC 2865 5.26)


def vsa(vendor_type: int, value: bytes, vendor: int = NETFATE_VENDOR) -> tuple[int, bytes]:
    """One Vendor-Specific attribute holding one sub-attribute."""
    if not 0 < len(value) <= 247:
        raise RadiusError(f"vendor attribute value of {len(value)} octets (1..247)")
    return VENDOR_SPECIFIC, VSA_HEADER.pack(vendor, vendor_type, len(value) + 2) + value


def vsas(pkt: Packet, vendor: int = NETFATE_VENDOR) -> list[tuple[int, bytes]]:
    """(vendor type, value) of every sub-attribute of `vendor`, in wire order."""
    out: list[tuple[int, bytes]] = []
    for raw in pkt.all_raw(VENDOR_SPECIFIC):
        if len(raw) < 4 or int.from_bytes(raw[:4], "big") != vendor:
            continue
        pos = 4
        while pos < len(raw):
            if pos + 2 > len(raw) or raw[pos + 1] < 2 or pos + raw[pos + 1] > len(raw):
                raise RadiusError("malformed vendor sub-attribute")
            out.append((raw[pos], raw[pos + 2 : pos + raw[pos + 1]]))
            pos += raw[pos + 1]
    return out
