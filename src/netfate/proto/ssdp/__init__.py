"""Sans-I/O parsers and rewriters for the discovery ALG of the Virtual Presence.

An IP-header rewrite alone breaks a shared media server or camera: its SSDP
messages, mDNS answers, device descriptions, content URLs and RTSP/SDP name its
PN1 address. These pieces make them name the device's alias in PN2:

- `addrmap`: whole addresses replaced in text in one pass; ports of the URLs that
  name the device (the ports the ALG learns).
- `ssdp`: SSDP messages (UPnP Device Architecture 2.0 section 1; HTTPU/HTTPMU):
  M-SEARCH, NOTIFY and search responses, every field rewritten.
- `http`: an HTTP/1.x or RTSP/1.0 message head.
- `framing`: one direction of an HTTP/1.x or RTSP/1.0 connection split into
  messages (Content-Length, chunked, until close, RTSP interleaved frames).
- `rewriter`: that direction rewritten: heads, text bodies (chunked, gzip, deflate
  undone), media streamed.
- `mdns`: DNS messages (RFC 1035 section 4, RFC 6762) of the device: A, AAAA, PTR,
  SRV, TXT, through `netfate.proto.dns`.

Every parser raises only `AlgError` on bad input (fuzzed in tests/fuzz).
"""

from .addrmap import AddressMap, url_ports
from .errors import AlgError
from .framing import Body, End, Event, Framing, Head, Interleaved, MessageReader
from .http import HttpHead, parse_head
from .mdns import MdnsRewrite, rewrite_mdns
from .rewriter import MessageRewriter, decode, is_text
from .ssdp import SsdpMessage, parse_ssdp, rewrite_ssdp

__all__ = [
    "AddressMap",
    "AlgError",
    "Body",
    "End",
    "Event",
    "Framing",
    "Head",
    "HttpHead",
    "Interleaved",
    "MdnsRewrite",
    "MessageReader",
    "MessageRewriter",
    "SsdpMessage",
    "decode",
    "is_text",
    "parse_head",
    "parse_ssdp",
    "rewrite_mdns",
    "rewrite_ssdp",
    "url_ports",
]
