"""Low-level host primitives shared by the testbed builder and the node agent.

- `netns`: create/remove/list namespaces; sockets, commands and callables inside them.
- `links`: veths, addresses, routes, MACs, sysctls, ethtool, counters (pyroute2).
- `tc`: TBF shaping and netem.
- `ovs`: a private ovsdb-server/ovs-vswitchd pair, ovs-vsctl transactions.
- `proc`: references to processes we started that survive pid reuse.
"""
