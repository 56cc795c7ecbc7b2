"""The controller process: `netfate controller --orchestrator URL --listen H:P [--netns NS]`.

os-ken runs here, in a process of its own, never inside the orchestrator's
asyncio process. os-ken 4.x uses native threads (its hub needs no eventlet
monkey-patching); `hub.patch()` is still called first, as os-ken expects.

The listening socket is opened by us, not by os-ken: with `--netns` a helper
thread enters the namespace (setns affects only the calling thread), binds and
listens there, and exits; the socket stays in that namespace. A vswitchd that
runs in the testbed's switch namespace reaches it on its own 127.0.0.1, and the
root namespace gets no route anywhere. Accepted connections are fed to os-ken's
datapath handling through a `Datapath` subclass that also survives malformed
messages (they are logged and skipped) instead of dropping the switch.

A datapath id belongs to the first live connection that claims it (its
FEATURES_REPLY): a second connection claiming a connected id is refused and
closed, so nobody can take a switch's place by announcing its id. The first
connection's liveness is checked with echo requests (ECHO_INTERVAL_S,
ECHO_UNANSWERED), so a switch whose old session died silently gets back in.

With --ofp-cert/--ofp-key/--ofp-ca each accepted connection first completes a
mutually authenticated TLS handshake (sdn/tls.py) or is closed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import ssl
import sys
import threading
import time
from typing import Any

log = logging.getLogger("netfate.sdn.process")
# With the raised collector thresholds (run()) a full collection almost never runs
# by itself, and the reference cycles every HTTP exchange with the orchestrator
# leaves (an httpx response and its stream) piled up: +20 MB over 400 churn cycles
# (bench/churn). One full collection at this interval keeps them bounded, at one
# stall per interval instead of one every few flow installs.
GC_INTERVAL_S = 30.0
# A session whose switch answers none of this many echo requests, sent this far
# apart, is closed: it no longer holds its datapath id (DatapathClaims).
ECHO_INTERVAL_S = 5.0
ECHO_UNANSWERED = 3


class DatapathClaims:
    """Which live session holds each datapath id. Thread-safe (recv threads call it).

    The first claim of an id wins until its holder releases it (its session
    ended); a claim of a held id by another session is refused. One session holds
    at most one id: announcing a second one is refused as well.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, object] = {}

    def claim(self, dpid: int, session: object) -> bool:
        with self._lock:
            holder = self._held.get(dpid)
            if holder is not None:
                return holder is session
            if any(s is session for s in self._held.values()):
                return False
            self._held[dpid] = session
            return True

    def release(self, session: object) -> None:
        """Drop whatever `session` holds (nothing if it held nothing)."""
        with self._lock:
            for dpid in [d for d, s in self._held.items() if s is session]:
                del self._held[dpid]

    def holder(self, dpid: int) -> object | None:
        with self._lock:
            return self._held.get(dpid)


CLAIMS = DatapathClaims()


def collect_periodically(interval: float = GC_INTERVAL_S) -> None:
    """Run a full garbage collection every `interval` seconds (a daemon thread's body)."""
    while True:
        time.sleep(interval)
        t0 = time.perf_counter()
        found = gc.collect()
        log.debug("full collection: %d objects in %.1f ms", found, (time.perf_counter() - t0) * 1e3)


def open_listener(host: str, port: int, netns: str | None = None) -> socket.socket:
    """A listening TCP socket, created inside network namespace `netns` if given
    (host.netns.socket_in: a helper thread enters the namespace, the caller never
    does); binding and listening then happen in that namespace from any thread."""
    from netfate.host import netns as _netns

    s = _netns.socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(64)
    except BaseException:
        s.close()
        raise
    return s


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT")
    return host, int(port)


def _install_datapath_handling(listener: socket.socket, tls: ssl.SSLContext | None = None) -> None:
    """Make os-ken serve switches from our socket, with a sturdier receive loop (with
    `tls`, only switches that complete a mutually authenticated handshake: sdn/tls.py)."""
    from os_ken.controller import controller as ofc
    from os_ken.controller import ofp_event, ofp_handler
    from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER
    from os_ken.lib import hub
    from os_ken.ofproto import ofproto_common, ofproto_parser

    class Datapath(ofc.Datapath):  # type: ignore[misc]
        def _recv_loop(self) -> None:
            # os-ken's loop with one change: a message that fails to parse or whose
            # handler raises is logged and skipped; framing comes from the header, so
            # the next message is still found. Only a broken stream ends the session.
            buf = bytearray()
            hdr = ofproto_common.OFP_HEADER_SIZE
            try:
                while self.state != DEAD_DISPATCHER:
                    try:
                        ret = self.socket.recv(max(hdr, 65536))
                    except (TimeoutError, ssl.SSLError):
                        continue
                    except OSError:
                        break
                    if not ret:
                        break
                    buf += ret
                    while len(buf) >= hdr:
                        version, msg_type, msg_len, xid = ofproto_parser.header(buf)
                        if msg_len < hdr:
                            log.warning(
                                "%s: message length %d < header; closing", self.address, msg_len
                            )
                            return
                        if len(buf) < msg_len:
                            break
                        raw = bytes(buf[:msg_len])
                        del buf[:msg_len]
                        if not self._dispatch(version, msg_type, msg_len, xid, raw):
                            return
            finally:
                with contextlib.suppress(OSError):
                    self.socket.close()

        def _dispatch(
            self, version: int, msg_type: int, msg_len: int, xid: int, raw: bytes
        ) -> bool:
            """Parse and deliver one message; False ends the session (refused)."""
            try:
                msg = ofproto_parser.msg(self, version, msg_type, msg_len, xid, raw)
            except Exception as e:
                log.warning(
                    "%s: malformed OpenFlow message skipped (version %#x type %d len %d): %r",
                    self.address,
                    version,
                    msg_type,
                    msg_len,
                    e,
                )
                return True
            if msg is None:
                # os-ken's parser already logged the bytes; say what became of them.
                log.warning(
                    "%s: malformed OpenFlow message skipped (version %#x type %d len %d)",
                    self.address,
                    version,
                    msg_type,
                    msg_len,
                )
                return True
            if not self._claim(msg):
                return False
            if self.ofp_brick is None:
                return True
            ev = ofp_event.ofp_msg_to_ev(msg)
            self.ofp_brick.send_event_to_observers(ev, self.state)
            for h in self.ofp_brick.get_handlers(ev):
                if self.state in h.callers[ev.__class__].dispatchers:
                    try:
                        h(ev)
                    except Exception:
                        log.exception("%s: handler failed on %s", self.address, type(msg).__name__)
            return True

        def _claim(self, msg: Any) -> bool:
            # Here, in the receive thread and before any handler sees it: os-ken's
            # own handler would otherwise adopt the id, and the app would take this
            # session for the switch. Only where os-ken would act on the reply.
            if self.state != CONFIG_DISPATCHER or not isinstance(
                msg, self.ofproto_parser.OFPSwitchFeatures
            ):
                return True
            dpid = int(msg.datapath_id)
            if CLAIMS.claim(dpid, self):
                return True
            holder = CLAIMS.holder(dpid)
            log.warning(
                "%s: refused: datapath %016x is already connected%s",
                self.address,
                dpid,
                f" from {holder.address}" if isinstance(holder, Datapath) else "",
            )
            return False

        def serve(self) -> None:
            send_thr = hub.spawn(self._send_loop)
            self.send_msg(self.ofproto_parser.OFPHello(self))
            # Liveness: os-ken's echo loop closes the session (state DEAD, which also
            # ends _recv_loop) when ECHO_UNANSWERED requests in a row go unanswered.
            self.echo_request_interval = ECHO_INTERVAL_S
            self.max_unreplied_echo_requests = ECHO_UNANSWERED
            hub.spawn(self._echo_request_loop)
            try:
                self._recv_loop()
            finally:
                # Native-hub threads cannot be killed: wake the send loop so it ends
                # (the socket is closed, so this write fails and the loop exits).
                self.send(b"", close_socket=True)
                hub.joinall([send_thr])
                self.is_active = False

    def serve_connection(sock: Any, addr: Any) -> None:
        if tls is not None:
            from netfate.orchestrator.sdn.tls import open_session

            sock = open_session(sock, addr, tls)
            if sock is None:
                return
        dp = Datapath(sock, addr)
        try:
            dp.serve()
        except Exception:
            log.exception("datapath %s: session ended with an error", addr)
        finally:
            # Close first: the DEAD state change is queued to the app before the id
            # is free, so the app sees this session go before a successor arrives.
            dp.close()
            CLAIMS.release(dp)

    class Acceptor:
        def __call__(self) -> None:
            while True:
                try:
                    conn, addr = listener.accept()
                except OSError as e:
                    log.error("accept failed: %s", e)
                    continue
                log.info("switch connection from %s", addr)
                hub.spawn(serve_connection, conn, addr)

    ofp_handler.OpenFlowController = Acceptor


def run(
    orchestrator: str,
    listen: str,
    netns: str | None = None,
    verbose: bool = False,
    metrics: tuple[str, int] | None = None,
    ca: str | None = None,
    token: str | None = None,
    ofp_tls: ssl.SSLContext | None = None,
) -> None:
    """Run the controller until killed (with `metrics`, Prometheus's /metrics on that
    loopback address: sdn/metrics.py; with `ca`, the orchestrator's certificate is
    checked against that CA: clihelp.client_tls). Blocks. `token`: the controller's
    credential. `ofp_tls`: switches connect over TLS with this context (sdn/tls.py)."""
    from netfate.clihelp import client_tls
    from netfate.orchestrator.sdn import controller, driver

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("os_ken").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    host, port = parse_listen(listen)
    listener = open_listener(host, port, netns)
    log.info(
        "listening for switches on %s:%d%s%s",
        host,
        port,
        f" in netns {netns}" if netns else "",
        " (TLS, switch certificates required)" if ofp_tls else " (plain TCP)",
    )
    if metrics is not None:
        from netfate.metrics.exposition import serve
        from netfate.orchestrator.sdn.metrics import REGISTRY

        served = serve(REGISTRY, *metrics)
        log.info("metrics on http://%s:%d/metrics", metrics[0], served.port)

    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    from os_ken.lib import hub

    # A packet-in crosses four threads before its flows are confirmed; with the
    # default 5 ms GIL switch interval a busy thread (a stats parse) adds whole
    # milliseconds at each hand-off.
    sys.setswitchinterval(0.0005)
    # Tables of ten thousand flows are hundreds of thousands of small objects; the
    # default collector thresholds then run full collections every few installs,
    # each a stall of tens of milliseconds on the packet-in path.
    gc.set_threshold(100_000, 50, 100)
    threading.Thread(target=collect_periodically, name="gc", daemon=True).start()
    hub.patch(thread=False)
    cfg.CONF(args=[], project="os_ken")
    controller.SETTINGS = driver.Settings(
        orchestrator=orchestrator, verify=client_tls(ca), token=token
    )
    _install_datapath_handling(listener, ofp_tls)
    AppManager.run_apps(["netfate.orchestrator.sdn.controller"])
