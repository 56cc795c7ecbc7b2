"""Make-before-break migration, agent to agent, and what each side does after a crash.

The orchestrator only records that instance I moves from S to T. The target agent
then drives the move directly with the source agent over TCP, because a cutover
that waited for orchestrator round trips could not stay within milliseconds:

    target                                   source
      | start standby copy (link down, not serving)            [T: preparing]
      |---- snapshot I ------------------------>|  export state, keep serving
      |<--- state -------------------------------|
      | import snapshot                          |             [T: freezing]
      |---- freeze I --------------------------->|  [S: frozen] stop serving, link
      |<--- final state, frozen_at --------------|  down, export final state
      | import final state                                     [T: final]
      | activate; link up, announce (gratuitous ARP)           [T: active]
      |---- release I -------------------------->|  [S: released] stop the copy
      | report done, downtime = active_at - frozen_at          [T: done]

    a failure before [T: final]: "thaw I" -> the source serves again; the standby
    goes [T: aborted]. From [T: final] on the target holds the final state: it
    completes the move whatever happens to the source or the link.

Each side writes its phase to `<state dir>/migrations/<instance>.json` *before* the
step it names (S before freezing, T before activating), so an agent killed at any
point knows on restart what it had done, and reports it. Who holds the final
state decides everything after a crash:

- the source's copy, until the target has imported the final state and written
  `final`; the source never thaws a frozen copy on its own, only on the target's
  word ("thaw", or a failure the target reported and the orchestrator recorded:
  the migration then leaves the source's desired state while the instance stays);
- the target's copy, from `final` on: it activates even if the source or the link
  died, and the source removes its frozen copy once the instance leaves its desired
  state (the orchestrator recorded the move).

The orchestrator gives every migration a deadline. Past it the migration is
`aborting`: the desired state says so, the source refuses to freeze from then on
(`refused`, if it had not frozen yet) and the target gives up unless it holds the
final state. The orchestrator never decides the outcome alone: it records
`failed` on the target's "failed" or the source's "refused", and `done` on the
target's "done" or the source's "released" (only a target with the final state
asks for a release).

Every window, and how it ends (S source, T target, O orchestrator):

    crash or cut at                  final state   how it ends
    -------------------------------  ------------  ----------------------------------------
    T, before or while starting      S, serving    T restarts in `preparing`: drops its copy
    the standby                                    and starts over (past the deadline S
                                                   refuses and O records failed)
    snapshot in transfer: S dies     S, serving    T's call fails: T `aborted`, O failed;
                                                   S restarts and adopts a serving copy
    snapshot in transfer: link cut   S, serving    deadline: S `refused`, T `aborted`,
                                                   O failed; S never froze
    S wrote `frozen` and froze, no   S, frozen     T (no final state) `aborted`, O failed;
    answer yet: S dies                             S restarts in `frozen`, the migration is
                                                   over and the instance still its: thaw
    the same, link cut               S, frozen     deadline: T `aborted`, its "thaw" is
                                                   lost, O failed; S sees the migration
                                                   over: thaw
    T sent freeze (`freezing`):      S, frozen     T restarts without the final state in
    T dies                           (or not yet)  hand: drops the standby, "thaw",
                                                   `aborted`, O failed; S thaws
    T wrote `final`, before          T's standby   T restarts: activate, release, `done`
    activating: T dies                             (its copy died meanwhile: `aborted`, S
                                                   thaws the frozen one)
    T `active`, release unanswered:  T             T `done` anyway, O done; S restarts in
    S dies                                         `frozen`, the instance is not its: stop
    S `released`: T dies before it   T             S reports "released", O done; T restarts
    reported                                       in `active` or `done` and reports
    O dies anywhere                  (unchanged)   the agents finish between them; their
                                                   reports wait and O applies them later
    deadline while T is unreachable  only T knows  stays `aborting` (its reason says why)
    and S `frozen`                                 until T is back: only T knows whether
                                                   its copy took over; thawing S without
                                                   its word could make two

Wire: one JSON object per line each way, as the instances' control sockets.
Each connection opens with a handshake in which both ends prove they hold the
secret the orchestrator gave this migration (migration_auth.py): a migration id
alone opens nothing. The source then answers only for the instance the orchestrator
marked as migrating away from it under that id, on that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from netfate import faults
from netfate.agent import channel
from netfate.agent.migration_auth import AuthFailed, ClientAuth, Credentials, ServerAuth
from netfate.model.lifecycle import MigrationStatus

log = logging.getLogger("netfate.agent.migration")

MAX_LINE = 64 << 20
PAGE = 4096  # one migration record, on disk
# How long the target waits for an answer of the source at most. The orchestrator's
# deadline (default 30 s) normally ends a stuck migration first; this only bounds the
# wait when the orchestrator cannot be heard either.
BACKSTOP_S = 120.0
T = TypeVar("T")


class MigrationError(Exception):
    pass


class Refused(MigrationError):
    """The source answered, and said no: it did not do what was asked."""


class Aborted(MigrationError):
    """The orchestrator called the migration off (its deadline passed, or it ended
    without this side's word) before this side held the final state."""


class LinkCut(Exception):
    """Raised by a handler at a fault point armed with `blackhole`: no answer."""


class LinkDropped(Exception):
    """Raised by a handler at a fault point armed with `drop`: close, no answer."""


async def fault(point: str) -> None:
    """A fault point on the migration path (netfate.faults): kill and hang act there;
    drop and blackhole become the exceptions the server turns into a lost answer."""
    action = await faults.hit(point)
    if action is faults.Action.BLACKHOLE:
        raise LinkCut(point)
    if action is faults.Action.DROP:
        raise LinkDropped(point)


# ---------------------------------------------------------------- phases, as tables


class SourcePhase(StrEnum):
    """The source side of one migration of one instance.

    serving   no migration has frozen it (the phase of an instance without a record)
    frozen    written before freezing: the copy here stopped serving; its final state
              went (or may have gone) to the target
    released  the target holds the final state and serves; the copy here is stopped
    refused   the deadline passed before the target asked for the freeze: never now
    """

    SERVING = "serving"
    FROZEN = "frozen"
    RELEASED = "released"
    REFUSED = "refused"


class TargetPhase(StrEnum):
    """The target side of one migration of one instance.

    preparing standby copy started, snapshot imported (nothing final here)
    freezing  written before asking the source to freeze: the final state is in flight
    final     written after importing the final state, before activating: this copy
              holds the instance's state now
    active    activated, port up, announced
    done      the source released its copy (or could not answer; it stops its copy
              when the orchestrator records the move)
    aborted   gave up before `final`; the standby is gone, the source may thaw
    """

    PREPARING = "preparing"
    FREEZING = "freezing"
    FINAL = "final"
    ACTIVE = "active"
    DONE = "done"
    ABORTED = "aborted"


Sp, Tp = SourcePhase, TargetPhase

SOURCE_TRANSITIONS: dict[SourcePhase, frozenset[SourcePhase]] = {
    Sp.SERVING: frozenset({Sp.FROZEN, Sp.REFUSED}),
    # freeze asked again (a target that lost the answer): the same final state
    Sp.FROZEN: frozenset({Sp.FROZEN, Sp.SERVING, Sp.RELEASED}),
    Sp.RELEASED: frozenset({Sp.RELEASED}),  # release asked again: already done
    Sp.REFUSED: frozenset(),
}

TARGET_TRANSITIONS: dict[TargetPhase, frozenset[TargetPhase]] = {
    Tp.PREPARING: frozenset({Tp.FREEZING, Tp.ABORTED}),
    Tp.FREEZING: frozenset({Tp.FINAL, Tp.ABORTED}),
    Tp.FINAL: frozenset({Tp.ACTIVE, Tp.ABORTED}),  # aborted: the standby died unactivated
    Tp.ACTIVE: frozenset({Tp.DONE}),
    Tp.DONE: frozenset(),
    Tp.ABORTED: frozenset(),
}


class IllegalStep(MigrationError):
    def __init__(self, side: str, current: str, target: str) -> None:
        super().__init__(f"migration {side}: cannot go from '{current}' to '{target}'")


# What an agent does with a record when it converges (or starts again), by phase and
# by what the desired state says of the migration:
#   open      the migration is still in the desired state (source: the instance is
#             here with that migration; target: the standby spec with that id)
#   over      the migration left the desired state, the instance is still desired
#             here (source: it failed; target: the orchestrator recorded the move)
#   gone      the instance is not desired here at all
# Actions: wait (nothing yet), thaw (serve again, forget), forget (drop the record;
# converge stops a copy that is not desired), restart (migrate afresh), abort
# (resume without the final state: drop the standby, thaw the source), complete
# (resume with the final state: activate, release, done).


class Settle(StrEnum):
    WAIT = "wait"
    THAW = "thaw"
    FORGET = "forget"
    RESTART = "restart"
    ABORT = "abort"
    COMPLETE = "complete"


SETTLE_SOURCE: dict[tuple[SourcePhase, str], Settle] = {
    (Sp.FROZEN, "open"): Settle.WAIT,  # the target decides
    (Sp.FROZEN, "over"): Settle.THAW,  # failed: the target said it holds nothing
    (Sp.FROZEN, "gone"): Settle.FORGET,  # moved (or destroyed): the copy here goes
    (Sp.RELEASED, "open"): Settle.WAIT,  # never start it here again
    (Sp.RELEASED, "over"): Settle.WAIT,
    (Sp.RELEASED, "gone"): Settle.FORGET,
    (Sp.REFUSED, "open"): Settle.WAIT,
    (Sp.REFUSED, "over"): Settle.FORGET,
    (Sp.REFUSED, "gone"): Settle.FORGET,
}

SETTLE_TARGET: dict[tuple[TargetPhase, str], Settle] = {
    (Tp.PREPARING, "open"): Settle.RESTART,
    (Tp.PREPARING, "over"): Settle.FORGET,
    (Tp.PREPARING, "gone"): Settle.FORGET,
    (Tp.FREEZING, "open"): Settle.ABORT,
    (Tp.FREEZING, "over"): Settle.ABORT,
    (Tp.FREEZING, "gone"): Settle.ABORT,
    (Tp.FINAL, "open"): Settle.COMPLETE,
    (Tp.FINAL, "over"): Settle.COMPLETE,
    (Tp.FINAL, "gone"): Settle.COMPLETE,
    (Tp.ACTIVE, "open"): Settle.COMPLETE,
    (Tp.ACTIVE, "over"): Settle.COMPLETE,
    (Tp.ACTIVE, "gone"): Settle.COMPLETE,
    (Tp.DONE, "open"): Settle.WAIT,  # reported until the orchestrator records it
    (Tp.DONE, "over"): Settle.FORGET,
    (Tp.DONE, "gone"): Settle.FORGET,
    (Tp.ABORTED, "open"): Settle.WAIT,
    (Tp.ABORTED, "over"): Settle.FORGET,
    (Tp.ABORTED, "gone"): Settle.FORGET,
}

# What each phase tells the orchestrator (MigrationReport.status).
Ms = MigrationStatus
REPORTED: dict[str, MigrationStatus] = {
    Sp.FROZEN: Ms.FROZEN,
    Sp.RELEASED: Ms.RELEASED,
    Sp.REFUSED: Ms.REFUSED,
    Tp.PREPARING: Ms.PREPARING,
    Tp.FREEZING: Ms.PREPARING,
    Tp.FINAL: Ms.PREPARING,
    Tp.ACTIVE: Ms.PREPARING,
    Tp.DONE: Ms.DONE,
    Tp.ABORTED: Ms.FAILED,
}


@dataclass
class Record:
    """One side's phase of one migration of one instance, as written to disk."""

    instance: str
    migration: int
    side: str  # "source" | "target"
    phase: str
    peer: str = ""
    """Target side: the source agent's endpoint (to release or thaw after a restart)."""
    frozen_at: float | None = None
    active_at: float | None = None
    state_bytes: int | None = None
    reason: str = ""
    at: float = field(default_factory=time.time)
    secret: str = field(default="", repr=False)
    """The migration's secret (migration_auth.py), for the requests after a restart
    (thaw, release), when the desired state may no longer name the migration. The
    record's file is its owner's only (0600)."""

    def advance(self, phase: str) -> None:
        """Move to `phase` if the side's table allows it; IllegalStep otherwise."""
        if self.side == "source":
            allowed: frozenset[str] = SOURCE_TRANSITIONS[SourcePhase(self.phase)]
        else:
            allowed = TARGET_TRANSITIONS[TargetPhase(self.phase)]
        if phase not in allowed:
            raise IllegalStep(self.side, self.phase, phase)
        self.phase = phase
        self.at = time.time()

    def settle(self, situation: str) -> Settle:
        if self.side == "source":
            return SETTLE_SOURCE[(SourcePhase(self.phase), situation)]
        return SETTLE_TARGET[(TargetPhase(self.phase), situation)]

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.migration,
            "instance": self.instance,
            "status": REPORTED[self.phase],
        }
        if self.phase == Tp.DONE:
            if self.frozen_at is not None and self.active_at is not None:
                out["downtime_ms"] = round((self.active_at - self.frozen_at) * 1000, 3)
            if self.state_bytes is not None:
                out["state_bytes"] = self.state_bytes
        if self.reason and self.phase in (Tp.ABORTED, Tp.DONE, Sp.REFUSED):
            out["reason"] = self.reason[:2000]
        return out


class Records:
    """Every instance's migration record of one agent: `<dir>/<instance>.json`."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.by_instance: dict[str, Record] = {}

    def load(self) -> dict[str, Record]:
        # Records carry the migration's secret: the directory is the agent's alone
        # (one made by an older agent with the umask's 0755 is narrowed).
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        for f in sorted(self.dir.glob("*.json")):
            try:
                rec = Record(**json.loads(f.read_text()))
                if rec.side == "source":
                    SourcePhase(rec.phase)
                else:
                    TargetPhase(rec.phase)
            except (OSError, ValueError, TypeError) as e:
                log.error("ignoring unreadable migration record %s: %s", f, e)
                continue
            self.by_instance[rec.instance] = rec
        return self.by_instance

    def get(self, instance: str) -> Record | None:
        return self.by_instance.get(instance)

    def save(self, rec: Record) -> None:
        """Write it before the step it names is taken, in one write of one page at
        offset 0 of its file, padded with spaces (JSON ignores them).

        The target writes `final` between the source's freeze and its own activation,
        so this is on a migration's downtime. Written over a temporary file and renamed
        (or truncated and rewritten), a record cost 3 ms (p95 9-17 ms) on this
        machine's ext4: it flushes a file replaced that way. Rewritten in place it
        costs microseconds, and a kill -9 cannot tear it: the kernel checks for a
        fatal signal between pages, never within one."""
        self.by_instance[rec.instance] = rec
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = asdict(rec)
        data = json.dumps(doc).encode()
        while len(data) > PAGE:  # only a long reason can make it so: shorten it
            doc["reason"] = str(doc["reason"])[: len(doc["reason"]) * 3 // 4]
            data = json.dumps(doc).encode()
        fd = os.open(self.dir / f"{rec.instance}.json", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data.ljust(PAGE), 0)
        finally:
            os.close(fd)

    def step(self, rec: Record, phase: str, **fields: Any) -> None:
        """Advance `rec` (the tables above decide) and write it."""
        rec.advance(phase)
        for k, v in fields.items():
            setattr(rec, k, v)
        self.save(rec)

    def forget(self, instance: str) -> None:
        self.by_instance.pop(instance, None)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{instance}.json").unlink()

    def __iter__(self) -> Any:
        return iter(list(self.by_instance.values()))


# ---------------------------------------------------------------- wire

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
SecretOf = Callable[[str, int], Awaitable[str | None]]
"""The secret of migration (instance, id) as this side knows it, None if it knows none."""

HANDSHAKE_S = 5.0
"""How long either end waits for the other's next handshake line."""


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret_of: SecretOf
) -> ServerAuth | None:
    """The source's half of migration_auth's handshake; None: refused (answered so)."""
    auth = ServerAuth()
    try:
        hello = await _read_request(reader)
        if hello is None:
            return None
        iid, mid = ServerAuth.hello_ids(hello)
        secret = await secret_of(iid, mid)
        if not secret:
            raise AuthFailed(f"no migration {mid} of {iid} away from here")
        await _answer(writer, auth.challenge(hello, secret))
        req = await _read_request(reader)
        if req is None:
            return None
        await _answer(writer, auth.on_auth(req))
        return auth
    except (AuthFailed, ValueError) as e:
        log.warning("migration peer %s refused: %s", writer.get_extra_info("peername"), e)
        await _answer(writer, {"ok": False, "error": str(e)})
        return None


async def _read_request(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """One handshake line as a JSON object; None at the end of the stream or when it is
    late (or a cut link, fault injection, swallowed it)."""
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(), HANDSHAKE_S)
        except TimeoutError:
            return None
        if not line:
            return None
        if faults.blackholed():
            continue
        req = json.loads(line)
        if not isinstance(req, dict):
            raise AuthFailed("expected a JSON object")
        return req


async def _answer(writer: asyncio.StreamWriter, resp: dict[str, Any]) -> None:
    writer.write(json.dumps(resp).encode() + b"\n")
    await writer.drain()


async def serve(
    handler: Handler, secret_of: SecretOf, host: str | channel.Channel, port: int = 0
) -> asyncio.Server:
    """The source's migration server: each connection authenticates first (see
    migration_auth.py), then its requests, for that instance and migration only, go
    to `handler`. `host` is an address here, or a `channel.Channel` (its namespace:
    the testbed node's, so that migrations cross the emulated links)."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            accepted = now()
            auth = await _handshake(reader, writer, secret_of)
            if auth is None:
                return
            # The source's stamps of this connection, sent with its first answer (the
            # snapshot's): the target's log breaks the move down by them (one clock
            # in the testbed; between machines they carry the clocks' offset).
            stamps: dict[str, float] | None = {"src_accepted": accepted, "src_authenticated": now()}
            while line := await reader.readline():
                if faults.blackholed():
                    continue  # a cut link (fault injection): the request is lost
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise MigrationError("expected a JSON object")
                    auth.check(req)
                    resp = await handler(req)
                except LinkCut:
                    continue
                except LinkDropped:
                    return
                except (MigrationError, AuthFailed, ValueError, KeyError, TypeError) as e:
                    resp = {"ok": False, "error": str(e)}
                except Exception as e:  # never let a peer's request kill the server
                    log.exception("migration request failed")
                    resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                if faults.blackholed():
                    continue
                if stamps is not None and resp.get("ok"):
                    resp["stamps"] = {**stamps, **resp.get("stamps", {}), "src_answered": now()}
                    stamps = None
                await _answer(writer, resp)
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    where = host if isinstance(host, channel.Channel) else channel.Channel(host, port)
    return await channel.listen(where, client, MAX_LINE)


class Peer:
    """The target's connection to the source agent, authenticated with `cred` (the
    migration it drives and its secret) before any request, opened from `netns` (the
    target node's namespace in the testbed; None: the agent's own)."""

    def __init__(
        self,
        endpoint: str,
        cred: Credentials,
        timeout: float = HANDSHAKE_S,
        netns: str | None = None,
    ) -> None:
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise MigrationError(f"bad peer endpoint {endpoint!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self.cred = cred
        self.timeout = timeout
        self.netns = netns
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Peer:
        try:
            auth = ClientAuth(self.cred)
        except AuthFailed as e:
            raise MigrationError(str(e)) from None
        self.reader, writer = await channel.connect(self.netns, self.host, self.port, MAX_LINE, 5.0)
        self.writer = writer
        try:
            challenge = await self.call(auth.hello(), self.timeout)
            await self.call(auth.on_challenge(challenge), self.timeout)
        except AuthFailed as e:
            writer.close()
            raise MigrationError(str(e)) from None
        except BaseException:
            writer.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def call(self, req: dict[str, Any], timeout: float = BACKSTOP_S) -> dict[str, Any]:
        if self.reader is None or self.writer is None:
            raise MigrationError("not connected")
        self.writer.write(json.dumps(req).encode() + b"\n")
        await self.writer.drain()
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except TimeoutError:
            raise MigrationError(f"no answer to {req.get('op')} in {timeout:.0f} s") from None
        if not line:
            raise MigrationError("source agent closed the connection")
        resp: dict[str, Any] = json.loads(line)
        if not resp.get("ok"):
            raise Refused(f"source refused {req.get('op')}: {resp.get('error')}")
        return resp


async def unless(abort: asyncio.Event, aw: Awaitable[T]) -> T:
    """Await `aw` unless `abort` is set first (then cancel it and raise Aborted)."""
    if abort.is_set():
        if asyncio.iscoroutine(aw):
            aw.close()
        raise Aborted("the orchestrator called the migration off")
    work = asyncio.ensure_future(aw)
    stop = asyncio.ensure_future(abort.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        raise Aborted("the orchestrator called the migration off")
    finally:
        stop.cancel()
        if not work.done():
            work.cancel()


def now() -> float:
    return time.time()
