"""Run Debian's FreeRADIUS 3.2 as a reference peer (tests, benchmarks, interop).

A private copy of /etc/freeradius/3.0 in a directory of the caller's: our own
radiusd.conf paths (raddbdir, logdir, run_dir), no privilege drop (the copy lives
under a root-only temporary directory), a single virtual server listening on
127.0.0.1 at the given ports, one client with a secret that must send
Message-Authenticator, and PAP users in mods-config/files/authorize. EAP and the
default sites are disabled: they need certificates and bind 0.0.0.0:1812.
The process is ours: started with Popen, stopped by its pid.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from netfate.host.private import write_private

SOURCE = Path("/etc/freeradius/3.0")
BINARY = "freeradius"

SITE = """\
server netfate {{
    listen {{
        type = auth
        ipaddr = {listen}
        port = {auth}
    }}
    listen {{
        type = acct
        ipaddr = {listen}
        port = {acct}
    }}
    authorize {{
        preprocess
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
    preacct {{
        preprocess
        acct_unique
    }}
    accounting {{
        ok
    }}
    post-auth {{
        # 3.2.1 predates the BlastRADIUS fixes and signs a reply only when it
        # holds a Message-Authenticator: ask for one, so clients can require it.
        update reply {{
            &Message-Authenticator := 0x00
        }}
        Post-Auth-Type REJECT {{
            update reply {{
                &Message-Authenticator := 0x00
            }}
        }}
    }}
}}
"""


def available() -> bool:
    return shutil.which(BINARY) is not None and SOURCE.is_dir()


class FreeRadius:
    def __init__(
        self,
        workdir: Path,
        auth_port: int,
        secret: str,
        users: dict[str, tuple[str, dict[str, str]]],
        client: str = "127.0.0.1",
        acct_port: int | None = None,
        listen: str = "127.0.0.1",
        netns: str | None = None,
    ) -> None:
        self.listen = listen
        self.netns = netns
        self.dir = workdir / "raddb"
        self.auth_port = auth_port
        self.acct_port = acct_port or auth_port + 1
        self.secret = secret
        self.users = users
        self.client = client
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "freeradius.log"

    def configure(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        shutil.copytree(SOURCE, self.dir, symlinks=True)
        (self.dir / "log").mkdir()
        (self.dir / "run").mkdir()
        conf = (self.dir / "radiusd.conf").read_text()
        conf = re.sub(r"(?m)^raddbdir = .*$", f"raddbdir = {self.dir}", conf)
        conf = re.sub(r"(?m)^logdir = .*$", f"logdir = {self.dir}/log", conf)
        conf = re.sub(r"(?m)^run_dir = .*$", f"run_dir = {self.dir}/run", conf)
        conf = re.sub(r"(?m)^(\s*)(user|group) = freerad", r"\1#\2 = freerad", conf)
        conf = re.sub(r"(?m)^(\s*)reject_delay = .*$", r"\1reject_delay = 0", conf)
        conf = re.sub(r"(?m)^proxy_requests\s*=.*$", "proxy_requests = no", conf)
        (self.dir / "radiusd.conf").write_text(conf)
        for d in ("sites-enabled",):
            for f in (self.dir / d).iterdir():
                f.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "mods-enabled" / "eap").unlink()
        (self.dir / "sites-enabled" / "netfate").write_text(
            SITE.format(auth=self.auth_port, acct=self.acct_port, listen=self.listen)
        )
        # The shared secret and the users' passwords: files only their owner reads.
        write_private(
            self.dir / "clients.conf",
            "client netfate {\n"
            f"    ipaddr = {self.client}\n"
            f'    secret = "{self.secret}"\n'
            "    require_message_authenticator = yes\n"
            "}\n",
        )
        lines = []
        for user, (password, reply) in self.users.items():
            lines.append(f'"{user}" Cleartext-Password := "{password}"')
            items = [f"    {k} = {v}" for k, v in reply.items()]
            if items:
                lines[-1] += "\n" + ",\n".join(items)
            lines.append("")
        write_private(self.dir / "mods-config" / "files" / "authorize", "\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.configure()
        logf = open(self.log, "wb")  # noqa: SIM115 (handed to the child)
        try:
            argv = [BINARY, "-f", "-l", "stdout", "-d", str(self.dir)]
            if self.netns is not None:
                argv = ["ip", "netns", "exec", self.netns, *argv]
            self.proc = subprocess.Popen(
                argv,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            logf.close()
        deadline = time.monotonic() + timeout
        while b"Ready to process requests" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"FreeRADIUS did not start:\n{out}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> FreeRadius:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def free_udp_ports(n: int = 2) -> int:
    """A base port with `n` consecutive free UDP ports on 127.0.0.1 (best effort)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        base = int(s.getsockname()[1])
        s.close()
        if base + n > 65535:
            continue
        ok = True
        for p in range(base, base + n):
            t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                t.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return base
    raise RuntimeError("no free UDP ports")
