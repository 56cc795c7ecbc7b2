"""A throwaway PostgreSQL server for tests: initdb in a temp dir, pg_ctl start on
127.0.0.1 and a free port, stopped and removed at the end. Debian's server binaries
live in /usr/lib/postgresql/VERSION/bin; initdb refuses root, so as root the
server runs as the `postgres` user."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL server binary {name} not found (apt install postgresql)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    base = tempfile.mkdtemp(prefix="nft-pg-")
    data = os.path.join(base, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [*as_user, _bin("initdb"), "-D", data, "-A", "trust", "-U", "netfate", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*as_user, _bin("pg_ctl"), "-D", data, "-o", opts, "-l", f"{base}/log", "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://netfate@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, _bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
