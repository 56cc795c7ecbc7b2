"""A fake Prometheus HTTP API on 127.0.0.1 for unit tests: answers each path with
what the test put in `answers` (status, body), and records the queries it got."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Points = list[tuple[float, str]]


def matrix_body(series: list[tuple[dict[str, str], Points]]) -> bytes:
    result = [{"metric": m, "values": [[t, v] for t, v in pts]} for m, pts in series]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": result}}
    ).encode()


class FakeProm:
    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}
        """Path -> (status, body)."""
        self.ranges: dict[str, bytes] = {}
        """A range query's text -> its answer (before `answers` is looked at)."""
        self.asked: list[tuple[str, dict[str, str]]] = []
        self.url = ""

    def series(self, query: str, series: list[tuple[dict[str, str], Points]]) -> None:
        self.ranges[query] = matrix_body(series)


@contextlib.contextmanager
def fake_prometheus() -> Iterator[FakeProm]:
    fake = FakeProm()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            fake.asked.append((parts.path, params))
            if parts.path == "/api/v1/query_range" and params.get("query") in fake.ranges:
                status, body = 200, fake.ranges[params["query"]]
            else:
                status, body = fake.answers.get(parts.path, (404, b"404 page not found"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
