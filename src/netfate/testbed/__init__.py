"""Emulated edge testbed: topology -> namespaces, veth links, OVS bridges, control processes."""
