"""Sans-I/O parsers and rewriters for the discovery ALG of the Virtual Presence.

An IP-header rewrite alone breaks a shared DLNA media server: its SSDP
messages, device description and content URLs name its PN1 address. These
functions rewrite those addresses to the device's alias in PN2:

- `ssdp`: SSDP messages (UPnP Device Architecture 2.0 section 1; HTTPU/HTTPMU):
  M-SEARCH, NOTIFY and search responses; LOCATION and AL headers.
- `http`: an HTTP/1.x message head and a text body whose URLs are rewritten,
  Content-Length recomputed.
- `mdns`: DNS messages (RFC 1035 section 4, RFC 6762): A records of the device.

Every parser raises only `AlgError` on bad input (fuzzed in tests/fuzz).
"""

from .errors import AlgError
from .http import HttpHead, parse_head, rewrite_body, rewrite_urls
from .mdns import rewrite_a_records
from .ssdp import SsdpMessage, parse_ssdp, rewrite_ssdp

__all__ = [
    "AlgError",
    "HttpHead",
    "SsdpMessage",
    "parse_head",
    "parse_ssdp",
    "rewrite_a_records",
    "rewrite_body",
    "rewrite_ssdp",
    "rewrite_urls",
]
