"""Sans-I/O protocol cores: bytes and a ``now`` in, events and bytes out (DESIGN.md §1)."""
