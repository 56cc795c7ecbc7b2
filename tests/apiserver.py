"""The orchestrator's app served by uvicorn on 127.0.0.1 in a thread of the test process:
real HTTP (as `netfate orchestrator` serves it) with the app's lifespan, started and
stopped in well under a second, so a test can have a fresh one per case."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


@contextmanager
def serve(app: FastAPI, timeout: float = 30.0) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port); yields the base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as e:  # reported to the test below
            failed.append(e)

    thread = threading.Thread(target=run, name="apiserver", daemon=True)
    thread.start()
    # uvicorn sets `started` once it listens (after the app's startup); wait, bounded.
    for _ in range(int(timeout / 0.01)):
        if server.started or not thread.is_alive():
            break
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        thread.join(timeout)
        raise RuntimeError(f"the API server did not start: {failed or 'timeout'}")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the API server did not stop")
