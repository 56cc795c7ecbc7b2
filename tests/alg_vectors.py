"""Discovery messages captured from (or built by) real peers, shared by the ALG's unit
and fuzz tests."""

from __future__ import annotations

# As minidlna sends them (captured from minidlnad 1.3.x; addresses changed).
NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1810\r\n"
    b"LOCATION: http://192.168.1.2:8200/rootDesc.xml\r\nSERVER: Debian DLNADOC/1.50 UPnP/1.0 "
    b"MiniDLNA/1.3.0\r\nNT: upnp:rootdevice\r\nUSN: uuid:4d696e69-444c-164e-9d41-b827eb1d2b1f::"
    b"upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1810\r\nDATE: Sat, 21 Nov 2026 06:00:00 GMT\r\n"
    b"ST: urn:schemas-upnp-org:device:MediaServer:1\r\nUSN: uuid:x::urn:schemas-upnp-org:device:"
    b"MediaServer:1\r\nEXT:\r\nSERVER: Debian DLNADOC/1.50 UPnP/1.0 MiniDLNA/1.3.0\r\n"
    b"LOCATION: http://192.168.1.2:8200/rootDesc.xml\r\nContent-Length: 0\r\n\r\n"
)
# As gerbera (libupnp 1.14) answers an M-SEARCH, from an ephemeral port (captured).
LIBUPNP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Sun, 06 Dec 2026 21:33:48 GMT\r\n"
    b"EXT:\r\nLOCATION: http://192.168.1.2:49152/description.xml\r\nOPT: "
    b'"http://schemas.upnp.org/upnp/1/0/"; ns=01\r\n01-NLS: 7f1e1c0c-1dd2-11b2-a1c8-b5bd1bd7fc46'
    b"\r\nSERVER: Linux/6.18.44, UPnP/1.0, Portable SDK for UPnP devices/1.14.13\r\n"
    b"X-User-Agent: redsonic\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\nUSN: uuid:"
    b"152e6796::urn:schemas-upnp-org:device:MediaServer:1\r\n\r\n"
)
MSEARCH = (
    b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n'
    b"ST: ssdp:all\r\n\r\n"
)
# Built by python-zeroconf 0.47 (Debian python3-zeroconf), names compressed by it: a
# camera's answer (PTR, SRV, TXT with a URL; additionals A, AAAA, another A, a reverse
# PTR, NSEC) and a QU question for _rtsp._tcp.local.
ZEROCONF_ANSWER = bytes.fromhex(
    "000084000000000300000005055f72747370045f746370056c6f63616c00000c000100001194000d0a4672"
    "6f6e7420646f6f72c00cc0280021800100000078000c00000000022a0363616dc017c028001080010000"
    "1194002c0e706174683d2f63616d2f6d61696e1c75726c3d727473703a2f2f3139322e3136382e312e32"
    "2f63616d2f78c04700018001000000780004c0a80102c047001c8001000000780010fe80000000000000"
    "0000000000000001c047000180010000007800040a09080701320131033136380331393207696e2d6164"
    "6472046172706100000c8001000000780002c047c047002f800100000078000ac0470000000440000008"
)
ZEROCONF_QU = bytes.fromhex("000000000001000000000000055f72747370045f746370056c6f63616c00000c8001")
