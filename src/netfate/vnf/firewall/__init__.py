"""Personal firewall VNF: nftables rule set + conntrack state that migrate together."""

from netfate.vnf.firewall.function import Firewall

__all__ = ["Firewall"]
