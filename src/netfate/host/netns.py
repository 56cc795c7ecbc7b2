"""Network namespaces: create, remove, list, and reach into them without switching.

A namespace is a bind mount of an nsfs inode at /run/netns/NAME, the same
layout `ip netns` uses, so both tools see the same namespaces.

Switching namespace is per thread on Linux (setns(2) and unshare(2) with
CLONE_NEWNET act on the calling task only). Everything here that must act
inside a namespace runs in a short-lived helper thread that switches and then
exits, so the caller's thread (and the asyncio loop it may run) never changes
namespace. A socket keeps the namespace it was created in for its whole life,
which is how `socket_in` hands a namespaced socket back to the caller.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import os
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "NETNS_DIR",
    "CommandError",
    "ensure",
    "exists",
    "in_netns",
    "list_with_prefix",
    "popen_in",
    "remove",
    "rename",
    "run_in",
    "socket_in",
]

NETNS_DIR = Path("/run/netns")

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_dir_lock = threading.Lock()

T = TypeVar("T")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"invalid namespace name {name!r}")
    return name


def _path(name: str) -> Path:
    return NETNS_DIR / _check_name(name)


def _oserror(what: str, target: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what} {target}: {os.strerror(err)}")


def exists(name: str) -> bool:
    return _path(name).exists()


def list_with_prefix(prefix: str) -> list[str]:
    """Namespaces whose name starts with `prefix`, sorted."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _prepare_dir() -> None:
    # As iproute2 does: /run/netns is a shared mount point so that namespace
    # mounts made later propagate into mount namespaces `ip netns exec` creates.
    with _dir_lock:
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        d = str(NETNS_DIR).encode()
        if _libc.mount(b"none", d, b"none", MS_SHARED | MS_REC, None) == 0:
            return
        if _libc.mount(d, d, b"none", MS_BIND | MS_REC, None) != 0:
            raise _oserror("bind-mount", str(NETNS_DIR))
        if _libc.mount(b"none", d, b"none", MS_SHARED | MS_REC, None) != 0:
            raise _oserror("make shared", str(NETNS_DIR))


def _in_thread(fn: Callable[[], T]) -> T:
    result: list[T] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # re-raised in the caller's thread
            error.append(e)

    t = threading.Thread(target=work, name="netfate-netns", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def ensure(name: str) -> bool:
    """Create namespace `name` unless it exists. Returns True if it was created."""
    path = _path(name)
    if path.exists():
        return False
    _prepare_dir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    except FileExistsError:
        return False
    os.close(fd)

    def create() -> None:
        # The helper thread gets a fresh namespace and pins it with a bind mount
        # (thread-self, not self: /proc/self is the main thread's view).
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise _oserror("unshare for", name)
        if _libc.mount(b"/proc/thread-self/ns/net", bytes(path), b"none", MS_BIND, None) != 0:
            raise _oserror("bind-mount namespace", name)

    try:
        _in_thread(create)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return True


def rename(old: str, new: str) -> None:
    """Give namespace `old` the name `new` (which must not exist): a second bind mount
    of the same namespace under `new`, then `old`'s removed. The namespace, its
    interfaces and its processes are untouched (a warm standby's, taken by an
    instance, gets the instance's name: agent/standbys.py)."""
    src, dst = _path(old), _path(new)
    if not src.exists():
        raise FileNotFoundError(errno.ENOENT, f"no namespace {old!r}")
    fd = os.open(dst, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    if _libc.mount(bytes(src), bytes(dst), b"none", MS_BIND, None) != 0:
        err = _oserror("bind-mount namespace", new)
        dst.unlink(missing_ok=True)
        raise err
    remove(old)


def remove(name: str) -> bool:
    """Remove namespace `name` if it exists. Returns True if it existed.

    The kernel destroys the namespace (and every interface in it, including the
    peers of its veths) once no process and no mount holds it any more.
    """
    path = _path(name)
    if not path.exists():
        return False
    if _libc.umount2(bytes(path), MNT_DETACH) != 0 and ctypes.get_errno() not in (
        errno.EINVAL,
        errno.ENOENT,
    ):
        raise _oserror("unmount namespace", name)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def in_netns(ns: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` in a helper thread switched into namespace `ns` (None: run it here).

    Anything `fn` creates that is bound to a namespace (sockets, netlink
    handles, /proc/sys/net writes) belongs to `ns`.
    """
    if ns is None:
        return fn()
    fd = os.open(_path(ns), os.O_RDONLY | os.O_CLOEXEC)

    def switched() -> T:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise _oserror("setns into", ns)
        return fn()

    try:
        return _in_thread(switched)
    finally:
        os.close(fd)


def socket_in(ns: str | None, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket created inside namespace `ns`; the calling thread never switches."""
    return in_netns(ns, lambda: socket.socket(family, type, proto))


class CommandError(subprocess.CalledProcessError):
    """A command failed; unlike its base class, the message carries its stderr."""

    def __str__(self) -> str:
        err = self.stderr.strip() if isinstance(self.stderr, str) else ""
        cmd = " ".join(self.cmd) if isinstance(self.cmd, list) else str(self.cmd)
        return f"{cmd} exited with {self.returncode}" + (f": {err}" if err else "")


async def connect_in(ns: str | None, host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to ``host:port`` opened inside namespace ``ns`` (never routing
    the root namespace in), non-blocking, for an asyncio ``sock=``; closed again if
    it does not connect in ``timeout``."""
    s = socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(s, (host, port)), timeout)
    except BaseException:
        s.close()
        raise
    return s


def _argv(ns: str | None, argv: Sequence[str]) -> list[str]:
    if not argv:
        raise ValueError("empty command")
    return list(argv) if ns is None else ["ip", "netns", "exec", _check_name(ns), *argv]


def run_in(
    ns: str | None,
    argv: Sequence[str],
    check: bool = True,
    timeout: float = 30.0,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """Run a command inside `ns` (`ip netns exec`), capturing text output.

    With `check`, a non-zero exit raises CalledProcessError whose message
    includes the command's stderr.
    """
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc: subprocess.CompletedProcess[str] = subprocess.run(
        _argv(ns, argv), check=False, timeout=timeout, **kw
    )
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, proc.args, output=proc.stdout, stderr=proc.stderr)
    return proc


def popen_in(ns: str | None, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
    """Start a process inside `ns`; `ip netns exec` execs, so the pid is the command's."""
    return subprocess.Popen(_argv(ns, argv), **kw)
