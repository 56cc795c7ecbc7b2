"""A throwaway PostgreSQL server for tests: initdb in a temp dir, pg_ctl start on
127.0.0.1 and a free port, stopped and removed at the end. Debian's server binaries
live in /usr/lib/postgresql/VERSION/bin; initdb refuses root, so as root the
server runs as the `postgres` user. `PgServer.kill9()` crashes it (SIGKILL to the
postmaster and to each of its backends, by pid) and `start()` brings it back on the
same data directory and port (crash recovery replays its WAL)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from netfate.host.ports import free_port as _free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL server binary {name} not found (apt install postgresql)")
    return found[-1]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _exists(pid: int) -> bool:
    # A zombie counts: PostgreSQL refuses to start while its old postmaster's pid
    # exists at all (kill(pid, 0) succeeds), and init reaps it only after a while.
    return Path(f"/proc/{pid}").exists()


class PgServer:
    def __init__(self) -> None:
        self.base = tempfile.mkdtemp(prefix="nft-pg-")
        self.data = os.path.join(self.base, "data")
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        self.url = f"postgresql://netfate@127.0.0.1:{self.port}/postgres"
        initdb = [_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "netfate", "--no-sync"]
        subprocess.run(
            [*self.as_user, *initdb],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        opts = (
            f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        log = ["-l", f"{self.base}/log"]
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", self.data, "-o", opts, *log, "-w", "start"],
            check=True,
            capture_output=True,
        )

    def postmaster_pid(self) -> int:
        return int(Path(self.data, "postmaster.pid").read_text().split()[0])

    def kill9(self) -> None:
        """kill -9 the server: the postmaster first (so it restarts nothing), then every
        backend it had, each by its pid; returns once none of them exists any more."""
        pm = self.postmaster_pid()
        os.kill(pm, signal.SIGSTOP)  # it forks no new backend while we list them
        procs = [pm, *_children(pm)]
        for pid in procs:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_exists(p) for p in procs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL processes {procs} survived SIGKILL")
            time.sleep(0.02)

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, _bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def pg_server() -> Iterator[PgServer]:
    pg = PgServer()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        pg.remove()


@contextmanager
def postgres_server() -> Iterator[str]:
    with pg_server() as pg:
        yield pg.url


@contextmanager
def migrated_template() -> Iterator[tuple[str, Engine]]:
    """A server with a database `netfate_template` migrated once: yields the server's
    base URL and an admin engine. A test's database is a copy of it (CREATE DATABASE
    ... TEMPLATE takes milliseconds, a migration seconds); see `database_from`."""
    from netfate.store import Database

    with pg_server() as pg:
        admin = create_engine(
            pg.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE netfate_template"))
        base = pg.url.rsplit("/", 1)[0]
        db = Database(base + "/netfate_template")
        db.migrate()
        db.dispose()
        try:
            yield base, admin
        finally:
            admin.dispose()


def database_from(server: tuple[str, Engine], template: str) -> Iterator[str]:
    """A fresh database copied from `template` (template0: empty), dropped after."""
    base, admin = server
    name = "t" + secrets.token_hex(4)
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))
    yield f"{base}/{name}"
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
