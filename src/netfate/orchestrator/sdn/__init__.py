"""SDN controller: intents compiled to OpenFlow 1.3 flows on the nodes' Open vSwitch bridges.

- `intents`   typed intents and the network view (pure, JSON via pydantic)
- `compile`   intents + view -> flows and groups per switch (pure)
- `reconcile` desired vs actual table -> the batch to send (pure)
- the controller process (see `process`), sans-I/O core and its driver:
  - `brain`     what every switch should hold: view, intents, hosts seen ahead of it
  - `keeper`    one switch's table kept equal to the brain's (read, plan, send)
  - `core`      every decision: packet-ins, ports, reports; given `now` and a switch
  - `switch`    the switch as the core sees it (a Protocol); `frames` the frames it reads
  - `reports`   what the core tells the orchestrator (past-tense events)
  - `osken_switch`, `driver`, `controller`  os-ken, threads, HTTP, the os-ken app
- `ofp`, `wire`  flow specs <-> OpenFlow messages (os-ken's, and hand-packed flow-mods)
- `api`, `tables`, `cli`, `fabric`  the orchestrator side and `netfate flow ...`
"""
