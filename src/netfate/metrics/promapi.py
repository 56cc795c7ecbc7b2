"""Prometheus's HTTP API (v1): instant and range queries, the scrape targets.

The answers are untrusted bytes (any process could answer on that port), so the
parsers check every field and raise `PromError`, and only it, on anything else
than the documented shape:

    {"status": "success",
     "data": {"resultType": "matrix",
              "result": [{"metric": {"__name__": "...", "node": "cpe1"},
                          "values": [[1700000000.0, "0.25"], ...]}]}}
    {"status": "success", "data": {"resultType": "vector",
              "result": [{"metric": {...}, "value": [1700000000.0, "0.25"]}]}}
    {"status": "error", "errorType": "bad_data", "error": "..."}
    {"status": "success", "data": {"activeTargets": [{"labels": {...},
              "scrapeUrl": "http://...", "health": "up", "lastError": ""}], ...}}

Sample values are strings ("NaN", "+Inf" included, as Prometheus writes them);
they parse to floats, and callers drop what is not finite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "Client",
    "PromError",
    "Series",
    "Target",
    "parse_matrix",
    "parse_targets",
    "parse_vector",
]

MAX_BODY = 32 << 20
"""A larger answer is refused rather than held in memory."""


class PromError(Exception):
    """Prometheus could not be asked, refused the query, or answered something else
    than its API's documented shape."""


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]
    """(seconds since the epoch, value), in time order."""


@dataclass(frozen=True)
class Target:
    labels: Mapping[str, str]
    url: str
    health: str
    """up, down or unknown (not scraped yet)."""
    error: str


def _doc(body: bytes | str) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise PromError(f"answer too large ({len(body)} bytes)")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise PromError(f"answer is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PromError("answer is not a JSON object")
    status = doc.get("status")
    if status == "error":
        kind, msg = doc.get("errorType"), doc.get("error")
        raise PromError(f"Prometheus refused the query: {kind}: {msg}"[:1000])
    if status != "success":
        raise PromError(f"answer has status {status!r}"[:200])
    data = doc.get("data")
    if not isinstance(data, dict):
        raise PromError("answer has no data object")
    return data


def _labels(obj: Any, where: str) -> dict[str, str]:
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in obj.items()
    ):
        raise PromError(f"{where}: labels must map strings to strings")
    return dict(obj)


def _point(obj: Any, where: str) -> tuple[float, float]:
    if not isinstance(obj, list) or len(obj) != 2:
        raise PromError(f'{where}: a sample is [time, "value"]')
    t, v = obj
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise PromError(f"{where}: sample time must be a finite number")
    if not isinstance(v, str):
        raise PromError(f"{where}: sample value must be a string")
    try:
        return float(t), float(v)
    except ValueError:
        raise PromError(f"{where}: sample value {v[:40]!r} is not a number") from None


def _result(data: dict[str, Any], kind: str) -> list[Any]:
    if data.get("resultType") != kind:
        raise PromError(f"expected a {kind}, got {data.get('resultType')!r}"[:200])
    result = data.get("result")
    if not isinstance(result, list):
        raise PromError("result is not a list")
    for i, item in enumerate(result):
        if not isinstance(item, dict):
            raise PromError(f"result[{i}] is not an object")
    return result


def parse_matrix(body: bytes | str) -> list[Series]:
    """A range query's answer: one series per label set."""
    out = []
    for i, item in enumerate(_result(_doc(body), "matrix")):
        values = item.get("values")
        if not isinstance(values, list):
            raise PromError(f"result[{i}].values is not a list")
        pts = [_point(p, f"result[{i}].values[{j}]") for j, p in enumerate(values)]
        out.append(Series(_labels(item.get("metric"), f"result[{i}].metric"), sorted(pts)))
    return out


def parse_vector(body: bytes | str) -> list[Series]:
    """An instant query's answer: one sample per label set."""
    return [
        Series(
            _labels(item.get("metric"), f"result[{i}].metric"),
            [_point(item.get("value"), f"result[{i}].value")],
        )
        for i, item in enumerate(_result(_doc(body), "vector"))
    ]


def parse_targets(body: bytes | str) -> list[Target]:
    """The active scrape targets and their health."""
    active = _doc(body).get("activeTargets")
    if not isinstance(active, list):
        raise PromError("activeTargets is not a list")
    out = []
    for i, t in enumerate(active):
        if not isinstance(t, dict):
            raise PromError(f"activeTargets[{i}] is not an object")
        url, health, error = (t.get(k) for k in ("scrapeUrl", "health", "lastError"))
        if not (isinstance(url, str) and isinstance(health, str) and isinstance(error, str)):
            raise PromError(f"activeTargets[{i}]: scrapeUrl, health and lastError are strings")
        labels = _labels(t.get("labels"), f"activeTargets[{i}].labels")
        out.append(Target(labels, url, health, error))
    return out


class Client:
    """Asks one Prometheus server (`url`: http://HOST:PORT). Synchronous: the
    callers are worker threads (the reconcile loops) and tests."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, str]) -> bytes:
        try:
            with httpx.stream(
                "GET", f"{self.url}{path}", params=dict(params), timeout=self.timeout
            ) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise PromError(f"answer from {self.url} larger than {MAX_BODY} bytes")
        except httpx.HTTPError as e:
            raise PromError(f"cannot ask Prometheus at {self.url}: {e}") from None
        # Refusals (400, 422, 503) carry the API's error object: _doc reports it.
        if r.status_code >= 400 and not body.lstrip().startswith(b"{"):
            raise PromError(f"Prometheus answered {r.status_code}: {bytes(body[:200])!r}")
        return bytes(body)

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        if not (math.isfinite(start) and math.isfinite(end) and step > 0 and end >= start):
            raise ValueError(f"bad range: {start}..{end} step {step}")
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}",
                  "step": f"{step:g}"}  # fmt: skip
        return parse_matrix(self._get("/api/v1/query_range", params))

    def query(self, query: str, at: float | None = None) -> list[Series]:
        params = {"query": query} | ({"time": f"{at:.3f}"} if at is not None else {})
        return parse_vector(self._get("/api/v1/query", params))

    def targets(self) -> list[Target]:
        return parse_targets(self._get("/api/v1/targets", {"state": "active"}))

    def ready(self) -> bool:
        """The server answers and has loaded its storage (`/-/ready`)."""
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except httpx.HTTPError:
            return False
