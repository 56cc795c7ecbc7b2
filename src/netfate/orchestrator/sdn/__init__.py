"""SDN controller: intents compiled to OpenFlow 1.3 flows on the nodes' Open vSwitch bridges.

- `intents`   typed intents and the network view (pure, JSON via pydantic)
- `compile`   intents + view -> flows and groups per switch (pure)
- `ofp`       flow specs <-> os-ken OpenFlow messages (untyped calls live here)
- `controller` the os-ken application (runs in its own process, see `process`)
- `api`, `tables`, `cli`  the orchestrator side and `netfate flow ...`
"""
