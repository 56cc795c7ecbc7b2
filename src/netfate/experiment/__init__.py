"""Experiments that reproduce the seeds' figures on the testbed (``netfate experiment``).

``hrh``: the Home Radio Head paper's Tables I and II (USB/IP mass-storage
throughput and serial ping-pong RTT in four home-to-ISP settings).
"""
