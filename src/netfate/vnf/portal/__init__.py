"""Captive portal VNF: login page, RFC 8908 API, RFC 8910 via dnsmasq, RADIUS client."""

from netfate.vnf.portal.function import Portal

__all__ = ["Portal"]
