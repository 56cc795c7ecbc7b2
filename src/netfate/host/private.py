"""Files only their owner reads: credentials handed to a process or kept for a user.

A secret is passed to another process in such a file (or its environment), never
on its argument list, which every user of the machine can read in /proc.

    write_private(path, text)   mode 0600 from the first byte (a new directory 0700),
                                replaced atomically
    read_private(path)          the text, stripped; None when there is no such file
    private_dir(path)           a directory only its owner enters (0700, made so if it
                                exists with another mode)
"""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old temp file keeps its mode through O_CREAT
        with os.fdopen(fd, "w") as f:
            fd = -1
            f.write(text)
        tmp.replace(path)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
    return path


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir leaves an existing directory as it was
    return path


def read_private(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
