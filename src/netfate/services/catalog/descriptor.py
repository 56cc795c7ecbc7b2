"""A service chain's descriptor: the YAML a provider publishes, parsed and checked.

Pure: text and the functions the platform offers in, a `ChainDescriptor` out,
or `DescriptorError` whose `errors` map each bad field's key (``blocks[1].cpu``,
``talks[0]``, ``sla.availability``) to what is wrong. Untrusted text: every
failure, whatever the bytes, is a `DescriptorError` (tests/services/catalog/fuzz fuzzes it).

    name: sensor-archive          # a slug: lowercase letters, digits, '-'
    version: 2                    # optional: the next one when omitted
    summary: Archive a sensor's readings near its owner.
    blocks:                       # the building blocks, in chain order (entry first)
      - name: collector
        function: counter         # a function a registered service (or the
        cpu: 0.2                  #   platform) provides; resources default to
        memory_mb: 64             #   the function's own
        storage_mb: 10
      - {name: archive, function: forwarder}
    talks:                        # who talks to whom, and how much (Mbit/s);
      - {from: collector, to: archive, mbps: 1}   # default: each block to the next
    user_mbps: 1                  # the user's traffic to the entry block
    sla:
      latency_ms: 20              # round trip bound, user to entry block
      availability: 0.99          # the chain's availability bound

Relationships are directed (the way the chain's data flows) and must not close a
cycle. The SLA is impossible when its numbers cannot be met by any network (a
bound of 0 ms, an availability above 1); `check_against` adds what the
platform's nodes cannot meet (a block larger than every node, an availability
no node reaches).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

MAX_BYTES = 64 * 1024
MAX_BLOCKS = 32
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,47}$")
_BLOCK_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TOP = {"name", "version", "summary", "blocks", "talks", "user_mbps", "sla"}
_BLOCK = {"name", "function", "cpu", "memory_mb", "storage_mb"}
_TALK = {"from", "to", "mbps"}
_SLA = {"latency_ms", "availability"}


class DescriptorError(ValueError):
    """An invalid descriptor; `errors` maps each bad field's key to what is wrong."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class Function:
    """A function the platform can run (a descriptor), with its default resources."""

    name: str
    cpu: float
    memory_mb: float


@dataclass(frozen=True)
class BlockSpec:
    name: str
    function: str
    cpu: float
    memory_mb: float
    storage_mb: float


@dataclass(frozen=True)
class TalkSpec:
    a: str
    b: str
    mbps: float


@dataclass(frozen=True)
class ChainDescriptor:
    name: str
    version: int | None
    summary: str
    blocks: tuple[BlockSpec, ...]
    talks: tuple[TalkSpec, ...]
    user_mbps: float
    latency_ms: float | None
    availability: float | None

    def to_dict(self) -> dict[str, Any]:
        """The descriptor as stored and returned (defaults filled in)."""
        return {
            "name": self.name,
            "version": self.version,
            "summary": self.summary,
            "blocks": [
                {
                    "name": b.name,
                    "function": b.function,
                    "cpu": b.cpu,
                    "memory_mb": b.memory_mb,
                    "storage_mb": b.storage_mb,
                }
                for b in self.blocks
            ],
            "talks": [{"from": t.a, "to": t.b, "mbps": t.mbps} for t in self.talks],
            "user_mbps": self.user_mbps,
            "sla": {"latency_ms": self.latency_ms, "availability": self.availability},
        }


class _NoAliases(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a descriptor needs none, and aliases
    let a few bytes stand for an exponentially large document."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not accepted", None
            )
        return super().compose_node(parent, index)


def load_yaml(text: str | bytes) -> Any:
    """The YAML document in `text`, or DescriptorError (never anything else)."""
    if len(text) > MAX_BYTES:
        raise DescriptorError({"document": f"larger than {MAX_BYTES} bytes"})
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DescriptorError({"document": f"not UTF-8: {e.reason}"}) from None
    try:
        return yaml.load(text, Loader=_NoAliases)
    except yaml.YAMLError as e:
        raise DescriptorError({"document": f"not valid YAML: {_short(e)}"}) from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as e:
        # Deep nesting, or a scalar the resolver cannot convert (a huge date, int).
        raise DescriptorError({"document": f"cannot be read: {type(e).__name__}"}) from None


def _short(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"[:200]


def parse(text: str | bytes, functions: Mapping[str, Function]) -> ChainDescriptor:
    """Parse and check a descriptor; DescriptorError names every problem found."""
    return check(load_yaml(text), functions)


def check(doc: Any, functions: Mapping[str, Function]) -> ChainDescriptor:
    """Check a parsed document (a mapping) against the schema and the functions."""
    errors: dict[str, str] = {}
    if not isinstance(doc, dict):
        raise DescriptorError({"document": f"must be a mapping, not {_type(doc)}"})
    _unknown(errors, "", doc, _TOP)
    name = _str(errors, "name", doc.get("name"), required=True)
    if name and not NAME_RE.match(name):
        errors["name"] = "a slug: lowercase letters, digits and '-', starting with a letter"
    version: int | None = None
    if doc.get("version") is not None:
        v = doc["version"]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1_000_000:
            errors["version"] = f"must be an integer from 1, not {_type(v)} {_show(v)}"
        else:
            version = v
    summary = _str(errors, "summary", doc.get("summary"), required=False, limit=500)

    blocks: list[BlockSpec] = []
    raw_blocks = doc.get("blocks")
    if not isinstance(raw_blocks, list) or not raw_blocks:
        errors["blocks"] = "a non-empty list of blocks is required"
        raw_blocks = []
    elif len(raw_blocks) > MAX_BLOCKS:
        errors["blocks"] = f"at most {MAX_BLOCKS} blocks"
        raw_blocks = []
    names: set[str] = set()
    for i, rb in enumerate(raw_blocks):
        key = f"blocks[{i}]"
        if not isinstance(rb, dict):
            errors[key] = f"must be a mapping, not {_type(rb)}"
            continue
        _unknown(errors, key, rb, _BLOCK)
        bname = _str(errors, f"{key}.name", rb.get("name"), required=True)
        if bname and not _BLOCK_RE.match(bname):
            errors[f"{key}.name"] = "lowercase letters, digits, '-' or '_', starting with a letter"
        elif bname in names:
            errors[f"{key}.name"] = f"block {bname!r} defined twice"
        names.add(bname)
        fname = _str(errors, f"{key}.function", rb.get("function"), required=True)
        fn = functions.get(fname)
        if fname and fn is None:
            known = ", ".join(sorted(functions)) or "none"
            errors[f"{key}.function"] = f"unknown function {fname!r} (known: {known})"[:300]
        cpu = _num(errors, f"{key}.cpu", rb.get("cpu"), fn.cpu if fn else 0.0, upper=1024)
        mem = _num(
            errors, f"{key}.memory_mb", rb.get("memory_mb"), fn.memory_mb if fn else 0.0,
            upper=1 << 24,
        )  # fmt: skip
        sto = _num(errors, f"{key}.storage_mb", rb.get("storage_mb"), 0.0, upper=1 << 30)
        if fn is not None:
            # The platform reserves at least what the function itself declares.
            if cpu < fn.cpu:
                errors[f"{key}.cpu"] = f"below the function's own {fn.cpu:g}"
            if mem < fn.memory_mb:
                errors[f"{key}.memory_mb"] = f"below the function's own {fn.memory_mb:g}"
        blocks.append(BlockSpec(bname, fname, cpu, mem, sto))

    talks = _talks(errors, doc, [b.name for b in blocks], names)
    user_mbps = _num(errors, "user_mbps", doc.get("user_mbps"), 0.0, upper=1e6)
    latency, avail = _sla(errors, doc.get("sla"))
    if errors:
        raise DescriptorError(errors)
    return ChainDescriptor(
        name, version, summary, tuple(blocks), tuple(talks), user_mbps, latency, avail
    )


def _talks(
    errors: dict[str, str], doc: dict[Any, Any], order: list[str], names: set[str]
) -> list[TalkSpec]:
    raw = doc.get("talks")
    if raw is None:
        return [TalkSpec(a, b, 0.0) for a, b in itertools.pairwise(order)]
    if not isinstance(raw, list):
        errors["talks"] = f"must be a list, not {_type(raw)}"
        return []
    out: list[TalkSpec] = []
    seen: set[tuple[str, str]] = set()
    for i, rt in enumerate(raw[: MAX_BLOCKS * MAX_BLOCKS]):
        key = f"talks[{i}]"
        if not isinstance(rt, dict):
            errors[key] = f"must be a mapping, not {_type(rt)}"
            continue
        _unknown(errors, key, rt, _TALK)
        a = _str(errors, f"{key}.from", rt.get("from"), required=True)
        b = _str(errors, f"{key}.to", rt.get("to"), required=True)
        for end, v in (("from", a), ("to", b)):
            if v and v not in names:
                errors[f"{key}.{end}"] = f"unknown block {v!r}"
        if a and a == b:
            errors[f"{key}.to"] = "a block does not talk to itself"
        elif (a, b) in seen or (b, a) in seen:
            errors[key] = f"{a} and {b} are already related"
        seen.add((a, b))
        mbps = _num(errors, f"{key}.mbps", rt.get("mbps"), 0.0, upper=1e6)
        out.append(TalkSpec(a, b, mbps))
    good = [t for t in out if t.a in names and t.b in names and t.a != t.b]
    cycle = _cycle(good)
    if cycle is not None:
        i = out.index(cycle[-1])
        path = " -> ".join([t.a for t in cycle] + [cycle[0].a])
        errors[f"talks[{i}]"] = f"closes a cycle: {path}"
    return out


def _cycle(talks: list[TalkSpec]) -> list[TalkSpec] | None:
    """The talks of one directed cycle (in order), or None (depth-first, iterative)."""
    succ: dict[str, list[TalkSpec]] = {}
    for t in talks:
        succ.setdefault(t.a, []).append(t)
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(succ):
        if colour.get(start):
            continue
        path: list[TalkSpec] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        colour[start] = 1
        while stack:
            node, i = stack[-1]
            nxt = succ.get(node, [])
            if i >= len(nxt):
                colour[node] = 2
                stack.pop()
                if path:
                    path.pop()
                continue
            stack[-1] = (node, i + 1)
            t = nxt[i]
            c = colour.get(t.b, 0)
            if c == 1:
                loop = [*path, t]
                first = next(j for j, p in enumerate(loop) if p.a == t.b)
                return loop[first:]
            if c == 0:
                colour[t.b] = 1
                path.append(t)
                stack.append((t.b, 0))
    return None


def _sla(errors: dict[str, str], raw: Any) -> tuple[float | None, float | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        errors["sla"] = f"must be a mapping, not {_type(raw)}"
        return None, None
    _unknown(errors, "sla", raw, _SLA)
    latency: float | None = None
    avail: float | None = None
    if raw.get("latency_ms") is not None:
        v = _num(errors, "sla.latency_ms", raw["latency_ms"], 0.0, upper=1e7)
        if "sla.latency_ms" not in errors:
            if v <= 0:
                errors["sla.latency_ms"] = "impossible: a round trip bound must be above 0 ms"
            else:
                latency = v
    if raw.get("availability") is not None:
        v = _num(errors, "sla.availability", raw["availability"], 0.0, upper=math.inf)
        if "sla.availability" not in errors:
            if not 0 < v <= 1:
                errors["sla.availability"] = f"impossible: a fraction in (0, 1], not {v:g}"
            else:
                avail = v
    return latency, avail


def check_against(
    desc: ChainDescriptor, nodes: list[tuple[float, float, float, float]]
) -> dict[str, str]:
    """What the platform's hosting nodes cannot meet, keyed like `check`'s errors.
    `nodes`: (cpu, memory MiB, storage MiB, availability) of each node that can host.
    Empty when the chain could fit somewhere (or no node is known yet)."""
    if not nodes:
        return {}
    errors: dict[str, str] = {}
    for i, b in enumerate(desc.blocks):
        for j, (attr, need) in enumerate(
            (("cpu", b.cpu), ("memory_mb", b.memory_mb), ("storage_mb", b.storage_mb))
        ):
            most = max(n[j] for n in nodes)
            if need > most:
                errors[f"blocks[{i}].{attr}"] = (
                    f"impossible: needs {need:g}, the largest node offers {most:g}"
                )
    if desc.availability is not None:
        best = max(n[3] for n in nodes)
        if desc.availability > best:
            errors["sla.availability"] = (
                f"impossible: {desc.availability:g} is above every node's availability "
                f"(best {best:g})"
            )
    return errors


def _unknown(errors: dict[str, str], prefix: str, raw: dict[Any, Any], known: set[str]) -> None:
    for k in raw:
        if k not in known:
            key = f"{prefix}.{_show(k)}" if prefix else _show(k)
            errors[key[:120]] = f"unknown key (known: {', '.join(sorted(known))})"


def _str(errors: dict[str, str], key: str, v: Any, *, required: bool, limit: int = 64) -> str:
    if v is None:
        if required:
            errors[key] = "required"
        return ""
    if not isinstance(v, str):
        errors[key] = f"must be a string, not {_type(v)}"
        return ""
    if len(v) > limit:
        errors[key] = f"at most {limit} characters"
        return ""
    return v


def _num(errors: dict[str, str], key: str, v: Any, default: float, *, upper: float) -> float:
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        errors[key] = f"must be a number, not {_type(v)}"
        return default
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f) or f < 0:
        errors[key] = f"must be a finite number >= 0, not {_show(v)}"
        return default
    if f > upper:
        errors[key] = f"at most {upper:g}"
        return default
    return f


def _type(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _show(v: Any) -> str:
    s = repr(v) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."
