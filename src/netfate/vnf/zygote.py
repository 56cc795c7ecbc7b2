"""A fork server for instances: start a function in milliseconds, not an interpreter.

Starting `python -m netfate.vnf ...` costs an interpreter and its imports: about
60 ms on an idle core and several hundred on a loaded 2-core machine, most of an
instance's create-to-running time. The agent therefore keeps one zygote: a
process that has imported the runtime (and each function once it has been asked
for) and forks a child per instance. The child joins the instance's network
namespace (setns), starts a session of its own (it must outlive the zygote and
the agent), names itself `nf-<instance>` (so an agent that restarts can tell it
is ours from /proc), and runs the function.

The zygote is single-threaded (fork and threads do not mix), reaps its children,
and dies with the agent that started it (PR_SET_PDEATHSIG); the instances do not.

Protocol: a UNIX stream socket, one JSON line each way:
    {"netns": NAME, "argv": [runtime arguments], "log": PATH, "instance": ID}
    -> {"ok": true, "pid": PID} | {"ok": false, "error": "..."}
    {"preload": FUNCTION}   import it now (a pre-deployed image, agent/standbys.py)
    -> {"ok": true} | {"ok": false, "error": "..."}
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any

from netfate.vnf.names import process_name

CLONE_NEWNET = 0x40000000
PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)

__all__ = ["PARENT_ENV", "main", "process_name", "serve"]


def _reap(_signum: int, _frame: Any) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _child(req: dict[str, Any], listener: socket.socket, conn: socket.socket, ready_w: int) -> None:
    """Runs in the forked child; never returns. Writes one line to `ready_w` once it
    is in its namespace and named (empty: fine; else the error), so the zygote only
    answers with a pid the agent can recognise in /proc."""
    code = 1
    try:
        listener.close()
        conn.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        try:
            fd = os.open(f"/run/netns/{req['netns']}", os.O_RDONLY)
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {req['netns']}")
            os.close(fd)
            _libc.prctl(PR_SET_NAME, process_name(str(req["instance"])).encode(), 0, 0, 0)
        except BaseException as e:
            os.write(ready_w, f"{type(e).__name__}: {e}\n".encode())
            raise
        os.write(ready_w, b"\n")
        os.close(ready_w)
        log = os.open(str(req["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        from netfate.vnf.runtime import main

        main([str(a) for a in req["argv"]])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


PARENT_ENV = "NETFATE_ZYGOTE_PARENT"  # the agent's pid, set by the agent that starts it


def serve(path: str) -> None:
    # First, before the imports (a second or more on a loaded machine): an agent
    # killed meanwhile would otherwise leave this process behind. Its parent may have
    # died even before this line: then it is not the parent any more.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    parent = os.environ.get(PARENT_ENV)
    if parent is not None and os.getppid() != int(parent):
        raise SystemExit(0)
    from netfate.vnf import runtime

    # Warm the imports every child needs; functions are imported on first request.
    for name in runtime.FUNCTIONS:
        runtime.load_function(name)
    signal.signal(signal.SIGCHLD, _reap)
    # Bound and listening under another name first, then renamed: the agent takes
    # the path's existence as ready, and a connect between bind and listen is refused
    # (an instance's start failed so on a loaded machine).
    early = f"{path}.{os.getpid()}"
    for stale in (path, early):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(early)
    listener.listen(16)
    os.rename(early, path)
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        with conn:
            try:
                req = json.loads(conn.makefile("rb").readline())
                if not isinstance(req, dict):
                    raise ValueError("expected a JSON object")
                if "preload" in req:  # a pre-deployed image: imported now, forks inherit it
                    runtime.load_function(str(req["preload"]))
                    conn.sendall(b'{"ok": true}\n')
                    continue
                argv = [str(a) for a in req["argv"]]
                runtime.load_function(argv[0])  # import here once; children inherit it
                ready_r, ready_w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(ready_r)
                    _child(req, listener, conn, ready_w)
                os.close(ready_w)
                with os.fdopen(ready_r, "rb") as ready:
                    problem = ready.readline().decode(errors="replace").strip()
                reply: dict[str, Any] = (
                    {"ok": False, "error": problem} if problem else {"ok": True, "pid": pid}
                )
            except (ValueError, KeyError, TypeError, OSError, ImportError, SystemExit) as e:
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m netfate.vnf.zygote SOCKET")
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
