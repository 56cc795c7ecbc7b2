"""RFC 5176 Disconnect, the server's side (it is the Dynamic Authorization Client).

Two parts, neither doing I/O:

- `plan(s, user, reason, secret_for)`: which Disconnect-Requests a release sends,
  read in the release's transaction (the NAS sessions the user has, each NAS's
  port and secret, and whether we may send there at all);
- `DisconnectCore`, sans-I/O: jobs + `now` in, datagrams (listener, bytes, address)
  and past-tense outcome events out; answers (listener, bytes, peer, now) in;
  `poll(now)` retransmits and gives up. One ClientCore per (listener, NAS address,
  port, secret), so identifiers and retransmissions are per NAS.

    release committed -> plan -> core.send(jobs) -> DisconnectSent, datagrams
    Disconnect-ACK -> DisconnectAcked; NAK -> DisconnectNaked (Error-Cause)
    no valid answer after 1 + retries sends `timeout` s apart -> DisconnectFailed

An answer counts only from the address and port its request went to, on the
listener it left from, and verifying against that request (Message-Authenticator
required): anything else is dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netfate.proto.radius import (
    Attr,
    ClientCore,
    Code,
    ErrorCause,
    RadiusError,
    RequestTimedOut,
    ResponseReceived,
)
from netfate.proto.radius.packet import Value
from netfate.services.firewall import nas_sessions, policy
from netfate.services.firewall.nas_sessions import ListenerKey, NasSession
from netfate.services.firewall.tables import FirewallUserRow
from netfate.store.tables import InstanceRow

DM_PORT = 3799  # RFC 5176 section 3.1
DM_TIMEOUT = 1.0
DM_RETRIES = 3  # so at most 4 transmissions per Disconnect-Request

Datagram = tuple[ListenerKey, bytes, tuple[str, int]]
"""(the listener whose socket sends it, the bytes, the destination)."""


@dataclass(frozen=True)
class DmJob:
    """One Disconnect-Request to send, decided by a release."""

    session: NasSession
    to: tuple[str, int]
    secret: bytes
    reason: str


@dataclass(frozen=True)
class DisconnectSent:
    job: DmJob
    """The request went out (its first transmission)."""


@dataclass(frozen=True)
class DisconnectAcked:
    job: DmJob
    rtt_ms: float
    """From the first transmission to the ACK."""


@dataclass(frozen=True)
class DisconnectNaked:
    job: DmJob
    error_cause: int | None
    """The NAK's Error-Cause (RFC 5176 section 3.5), if it carried a valid one."""


@dataclass(frozen=True)
class DisconnectFailed:
    job: DmJob
    detail: str
    """Why: the listener closed, the request could not be built, no answer."""


DmEvent = DisconnectSent | DisconnectAcked | DisconnectNaked | DisconnectFailed


def error_cause_name(code: int | None) -> str:
    try:
        return ErrorCause(code).name if code is not None else ""
    except ValueError:
        return str(code)


def event_record(ev: DmEvent) -> tuple[str, dict[str, Any]]:
    """The event log's kind and data for `ev` (the dashboard's timeline)."""
    job = ev.job
    n = job.session
    data: dict[str, Any] = {
        "user": n.user,
        "session": n.key[1],
        "nas": n.nas_identifier or n.peer[0],
        "to": f"{job.to[0]}:{job.to[1]}",
        "netns": n.listener[2],
        "reason": job.reason,
    }
    detail = ""
    if isinstance(ev, DisconnectAcked):
        data["rtt_ms"] = ev.rtt_ms
    elif isinstance(ev, DisconnectNaked):
        data["error_cause"] = ev.error_cause
        detail = error_cause_name(ev.error_cause)
    elif isinstance(ev, DisconnectFailed):
        detail = ev.detail
    if detail:
        data["detail"] = detail
    return type(ev).__name__, data


def request_attrs(n: NasSession, wall: float) -> list[tuple[int, Value]]:
    """The session identification attributes (RFC 5176 section 3) naming `n`."""
    attrs: list[tuple[int, Value]] = [
        (Attr.ACCT_SESSION_ID, n.key[1]),
        (Attr.USER_NAME, n.user),
    ]
    if n.framed_ip:
        attrs.append((Attr.FRAMED_IP_ADDRESS, n.framed_ip))
    if n.nas_identifier:
        attrs.append((Attr.NAS_IDENTIFIER, n.nas_identifier))
    attrs.append((Attr.EVENT_TIMESTAMP, int(wall)))
    return attrs


@dataclass
class DisconnectCore:
    """The Disconnect-Requests in flight, sans I/O (see the module docstring)."""

    timeout: float = DM_TIMEOUT
    retries: int = DM_RETRIES
    counters: dict[str, int] = field(
        default_factory=lambda: {"sent": 0, "acked": 0, "naked": 0, "failed": 0, "refused": 0}
    )
    cores: dict[tuple[ListenerKey, str, int, bytes], ClientCore] = field(default_factory=dict)
    _out: list[Datagram] = field(default_factory=list)

    def datagrams_to_send(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def send(
        self, jobs: list[DmJob], listeners: Container[ListenerKey], now: float, wall: float
    ) -> list[DmEvent]:
        """Start each job from its session's listener (one of `listeners`, the open
        ones); `wall` is the Event-Timestamp."""
        events: list[DmEvent] = []
        for job in jobs:
            n = job.session
            if n.listener not in listeners:
                events.append(DisconnectFailed(job, "the listener is closed"))
                continue
            ck = (n.listener, job.to[0], job.to[1], job.secret)
            core = self.cores.get(ck)
            if core is None:
                core = self.cores[ck] = ClientCore(
                    job.secret, self.timeout, self.retries, require_message_authenticator=True
                )
            try:
                _ident, wire = core.disconnect_request(request_attrs(n, wall), now, tag=job)
            except RadiusError as e:  # 256 in flight to one NAS, or an attribute too long
                events.append(DisconnectFailed(job, str(e)))
                continue
            self._out.append((n.listener, wire, job.to))
            self.counters["sent"] += 1
            events.append(DisconnectSent(job))
        return events

    def receive(
        self, listener: ListenerKey | None, data: bytes, peer: tuple[str, int], now: float
    ) -> list[DmEvent] | None:
        """A Disconnect-ACK/NAK. None when it matches no request of ours (the caller
        drops it); else the outcomes, one per request it answers."""
        answers: list[ResponseReceived] = []
        for (lk, ip, port, _secret), core in self.cores.items():
            if lk == listener and (ip, port) == peer:
                answers += core.receive(data, now)
        if not answers:
            return None
        events: list[DmEvent] = []
        for ans in answers:
            job = ans.tag
            if not isinstance(job, DmJob):
                continue
            if ans.response.code == Code.DISCONNECT_ACK:
                self.counters["acked"] += 1
                events.append(DisconnectAcked(job, round(ans.rtt * 1000, 1)))
            else:
                self.counters["naked"] += 1
                try:
                    cause = ans.response.integer(Attr.ERROR_CAUSE)
                except RadiusError:  # authentic, but its Error-Cause is malformed
                    cause = None
                events.append(DisconnectNaked(job, cause))
        return events

    def next_deadline(self) -> float | None:
        return min(
            (d for c in self.cores.values() if (d := c.next_deadline()) is not None), default=None
        )

    def poll(self, now: float) -> list[DmEvent]:
        """Retransmit what is due (datagrams_to_send); fail what ran out of tries."""
        events: list[DmEvent] = []
        for key, core in list(self.cores.items()):
            lk, ip, port, _secret = key
            resend, dead = core.poll(now)
            self._out += [(lk, wire, (ip, port)) for wire in resend]
            for gone in dead:
                if isinstance(gone, RequestTimedOut) and isinstance(gone.tag, DmJob):
                    self.counters["failed"] += 1
                    tries = 1 + core.retries
                    events.append(DisconnectFailed(gone.tag, f"no valid answer to {tries} sends"))
            if core.in_flight() == 0:
                del self.cores[key]
        return events


def may_send(listener: ListenerKey, address: str) -> bool:
    """Disconnects go into a namespace (from a listener opened there) or to
    127.0.0.0/8; never from the root namespace to anywhere else."""
    if listener[2] is not None:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _udp_port(value: Any) -> int | None:
    """`value` if it is a UDP port number, else None."""
    return value if isinstance(value, int) and 0 < value < 65536 else None


def dm_port(s: Session, nas: NasSession) -> int | None:
    """The NAS's Disconnect port: its portal instance's `dm_port` (None: it takes
    none), else the service setting `dm_port`, else 3799."""
    for inst in s.scalars(select(InstanceRow).where(InstanceRow.descriptor == policy.PORTAL)):
        if inst.state in policy.LIVE_STATES and (inst.ip or "").split("/")[0] == nas.peer[0]:
            cfg = inst.config or {}
            if "dm_port" in cfg:
                return _udp_port(cfg["dm_port"])
    return _udp_port(policy.setting(s, "dm_port", DM_PORT)) or DM_PORT


@dataclass(frozen=True)
class Refusal:
    """A session of the user's that gets no Disconnect-Request, and why."""

    session: NasSession
    why: str


def plan(
    s: Session,
    user: FirewallUserRow,
    reason: str,
    secret_for: Callable[[str], bytes | None],
) -> tuple[list[DmJob], list[Refusal]]:
    """The Disconnect-Requests that end every session `user` has at a NAS now (read
    in the release's transaction `s`), and the sessions we may not disconnect."""
    jobs: list[DmJob] = []
    refused: list[Refusal] = []
    for n in nas_sessions.of_user(s, user.name):
        port = dm_port(s, n)
        secret = secret_for(n.peer[0])
        if port is None or secret is None or not may_send(n.listener, n.peer[0]):
            why = (
                "no secret"
                if secret is None
                else "the NAS takes none"
                if port is None
                else "outside the namespaces"
            )
            refused.append(Refusal(n, why))
            continue
        jobs.append(DmJob(n, (n.peer[0], port), secret, reason))
    return jobs, refused
