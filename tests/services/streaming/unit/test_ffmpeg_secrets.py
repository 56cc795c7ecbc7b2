"""An ffmpeg child's stderr lines (kept for the function's stats and logs) never
show a secret it was given: ffmpeg quotes the URL it could not open, passphrase and
all (issue 12, section 5)."""

from __future__ import annotations

import asyncio

from netfate.model.secrets import HIDDEN
from netfate.vnf.streaming.ffmpeg import FfmpegChild


def test_stderr_lines_hide_the_secrets() -> None:
    child = FfmpegChild("ingest:x", [], secrets=["pass word/1", "pass%20word%2F1", ""])

    async def read() -> None:
        stream = asyncio.StreamReader()
        stream.feed_data(b"[concat] Impossible to open 'srt://h:1?passphrase=pass%20word%2F1'\n")
        stream.feed_data(b"said pass word/1 twice: pass word/1\n\nplain line\n")
        stream.feed_eof()
        await child._read_stderr(stream)

    asyncio.run(read())
    assert list(child.stderr) == [
        f"[concat] Impossible to open 'srt://h:1?passphrase={HIDDEN}'",
        f"said {HIDDEN} twice: {HIDDEN}",
        "plain line",
    ]
