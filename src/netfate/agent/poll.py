"""The agent's side of the orchestrator's agent API (HTTP, JSON).

    POST /agents/NODE/register {endpoint}      -> the desired state
    GET  /agents/NODE/desired?revision=R&wait=S -> the desired state, once its revision
                                                  differs from R or S seconds passed
    GET  /agents/NODE/desired                   -> the desired state, now
    POST /agents/NODE/report {instances, migrations, ports, resources}

A desired state is {"revision": int, "instances": [spec, ...]}; a spec has the
instance's id, function, role, config, addresses and, while it moves, `migration`
({id, role: source | target, peer, peer_endpoint, abort, secret}: the secret is what
the two agents prove to each other, migration_auth.py).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

READ_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 3.0


class OrchestratorLink:
    def __init__(
        self, url: str, node: str, verify: ssl.SSLContext | bool = True, token: str | None = None
    ) -> None:
        """`verify`: how the orchestrator's certificate is checked (clihelp.client_tls);
        `token`: the node's own agent token (it may read and report for this node only)."""
        self.base = f"{url.rstrip('/')}/api/v1/agents/{node}"
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            verify=verify,
            headers={"authorization": f"Bearer {token}"} if token else None,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def register(self, endpoint: str) -> httpx.Response:
        """The answer as it is: the caller tells a refusal from the desired state."""
        return await self.client.post(f"{self.base}/register", json={"endpoint": endpoint})

    async def desired(self, revision: int | None = None, wait: float = 0.0) -> dict[str, Any]:
        """The desired state; with `revision`, a long poll of at most `wait` seconds."""
        params = {"revision": revision, "wait": wait} if revision is not None else None
        # The read may take the whole wait: past the client's 10 s, a long poll of a
        # big testbed's heartbeat (33 s at 1,000 nodes) always timed out, and retried.
        timeout = httpx.Timeout(wait + READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        r = await self.client.get(f"{self.base}/desired", params=params, timeout=timeout)
        r.raise_for_status()
        state: dict[str, Any] = r.json()
        return state

    async def report(self, body: dict[str, Any]) -> None:
        r = await self.client.post(f"{self.base}/report", json=body)
        if r.status_code == 404:
            raise httpx.HTTPStatusError("node unknown", request=r.request, response=r)
        r.raise_for_status()
