"""netfate: personal network functions at the network edge."""

__version__ = "0.1.0"
