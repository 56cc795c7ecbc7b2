"""The node agent: converges one node to the desired state the orchestrator holds."""
