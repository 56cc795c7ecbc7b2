"""The streaming functions' configurations as schemas: what the orchestrator's API and
the agent check before an acquirer, relay, edge streamer or storage starts or is
reconfigured (netfate.vnf.registry names each one).

Each field carries the limits its function's own reader (config.py and the
``parse`` of each function's config) enforces; the rules that tie fields together
(unique ids, ports that clash, an SRT-only passphrase, a rendition a viewer names)
are that reader's, run on the checked configuration (imported then), so what the
schema takes the function takes. The converse is fuzzed (the schema refuses nothing
the reader takes but the paths below, and a false or empty value where the reader
reads an object or the work directory as not given).

Paths a function writes as root lie below the node's image directory (the
validation context's ``image_dir``, configs.DevicePath): the storage's ``volume``,
where it creates, writes and deletes recordings, and an edge's ``work_dir``.
Secrets (an SRT passphrase, an RTMP stream key, the key tokens are made with) are
marked write-only;
their keys are ones netfate.model.secrets hides from every read.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from netfate.vnf import configs
from netfate.vnf.configs import DevicePath, FunctionConfig

from . import config as c

Name = Annotated[str, Field(pattern=f"^{c.NAME.pattern}$", max_length=64)]
"""An identifier (flow, content, event, user, recording, rendition): a file and URL name."""


def _address(v: str) -> str:
    ip_address(v)  # ValueError: not an IP address
    return v


Address = Annotated[str, Field(max_length=64), AfterValidator(_address)]
"""An IP address, v4 or v6 (a link-local one with its interface: at most 64)."""
Port = Annotated[int, Field(ge=1, le=65535)]
RtpPort = Annotated[int, Field(ge=1, le=65534, description="RTP here, RTCP on port + 1")]
Seconds = Annotated[float, Field(ge=1, le=3600)]
Sources = Annotated[
    list[Address] | None,
    Field(max_length=c.MAX_HOPS, description="Senders accepted (none given: anyone)"),
]


def write_only(lo: int, hi: int, what: str) -> Any:
    """A write-only field: shown to no reader (its key is a secret key), given to the
    function."""
    return configs.write_only(None, hi, min_length=lo, description=what)


class NextHop(FunctionConfig):
    host: Address
    port: RtpPort


Hops = Annotated[list[NextHop] | None, Field(max_length=c.MAX_HOPS)]


class _Checked(FunctionConfig):
    """A whole configuration, passed through its function's own reader as well."""

    @classmethod
    def reader(cls) -> Callable[[Any], object]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _as_the_function_reads_it(self) -> Self:
        try:
            type(self).reader()(self.model_dump(exclude_unset=True))
        except c.ConfigError as e:
            raise ValueError(str(e)) from None
        return self


# ------------------------------------------------------------------ acquirer


class AcquirerPorts(FunctionConfig):
    first: Port
    last: Port


class AcquirerFlow(FunctionConfig):
    id: Name
    protocol: Literal["rtp", "srt", "rtmp"]
    port: Port = Field(description="RTP flows: at most 65534 (RTCP on port + 1)")
    event: Name | None = None
    state: Literal["scheduled", "started", "ended"] | None = "scheduled"
    next_hops: Hops = None
    sources: Sources = None
    armed_from: float | None = Field(default=None, ge=0, le=1e11, description="Unix seconds")
    armed_until: float | None = Field(default=None, ge=0, le=1e11, description="Unix seconds")
    passphrase: str | None = write_only(10, 79, "SRT flows only: the stream's passphrase")
    stream_secret: str | None = write_only(8, 128, "RTMP flows only: the publisher's stream key")
    latency_ms: int | None = Field(default=120, ge=20, le=8000, description="SRT only")


class AcquirerConfig(_Checked):
    flows: list[AcquirerFlow] | None = Field(default=None, max_length=32)
    ports: AcquirerPorts | None = Field(default=None, description="The block (at most 256 ports)")
    bind: Address = "0.0.0.0"
    source_timeout: Seconds | None = 10.0
    refusal_quiet_s: float | None = Field(default=10.0, ge=0, le=3600)

    @classmethod
    def reader(cls) -> Callable[[Any], object]:
        from .acquirer import AcquirerConfig as Read

        return Read.parse


# ------------------------------------------------------------------ relay


class RelayRoute(FunctionConfig):
    id: Name
    port: RtpPort
    next_hops: Hops = None
    sources: Sources = None


class RelayConfig(_Checked):
    routes: list[RelayRoute] | None = Field(default=None, max_length=64)
    bind: Address = "0.0.0.0"
    rtcp: bool | None = True
    source_timeout: Seconds | None = 10.0

    @classmethod
    def reader(cls) -> Callable[[Any], object]:
        from .relay import RelayConfig as Read

        return Read.parse


# ------------------------------------------------------------------ edge streamer


class EdgeRendition(FunctionConfig):
    name: Name = Field(description="Not 'source' (the stream as it arrives)")
    height: int = Field(ge=72, le=2160, multiple_of=2)
    video_kbps: int = Field(ge=50, le=50000)
    audio_kbps: int | None = Field(default=96, ge=16, le=512)


class EdgeViewer(FunctionConfig):
    host: Address
    port: RtpPort
    rendition: Name | None = "source"


class EdgeContent(FunctionConfig):
    id: Name
    port: RtpPort
    sources: Sources = None
    hls: bool | None = True
    renditions: list[EdgeRendition] | None = Field(default=None, max_length=4)
    viewers: list[EdgeViewer] | None = Field(default=None, max_length=c.MAX_HOPS)


class EdgeHls(FunctionConfig):
    segment_s: float | None = Field(default=1.0, ge=0.2, le=10)
    list_size: int | None = Field(default=6, ge=3, le=30)
    format: Literal["fmp4", "ts"] | None = "fmp4"
    low_latency: bool | None = False
    part_s: float | None = Field(default=0.2, ge=0.1, le=1.0)
    probe_s: float | None = Field(default=0.5, ge=0.1, le=5.0)
    start_segments: float | None = Field(default=2.0, ge=0, le=10)
    preroll_s: float | None = Field(default=2.0, ge=0, le=10)
    wait_first_s: float | None = Field(default=8.0, ge=0, le=30)


class EdgeJoin(FunctionConfig):
    secret: str | None = write_only(16, 256, "Joins need a token made with this key")
    lease_s: float | None = Field(default=300.0, ge=5, le=86400)
    max_viewers: int | None = Field(default=200, ge=1, le=10000)
    per_address: int | None = Field(default=8, ge=1, le=64)


class EdgeVodRecording(FunctionConfig):
    id: Name
    user: Name = Field(description="Whose it is: only their token plays it")
    origin: str = Field(max_length=256, description="http://ADDRESS:PORT/vod/ID/ at the storage")
    origin_secret: str | None = write_only(0, 200, "The storage's token for it")


class EdgeVod(FunctionConfig):
    secret: str | None = write_only(16, 256, "Playback needs a user's token made with this key")
    recordings: list[EdgeVodRecording] | None = Field(default=None, max_length=16)
    cache_bytes: int | None = Field(default=256 << 20, ge=1 << 20, le=1 << 40)


class EdgeConfig(_Checked):
    contents: list[EdgeContent] | None = Field(default=None, max_length=16)
    http_port: Port | None = 8080
    bind: Address = "0.0.0.0"
    hls: EdgeHls | None = None
    join: EdgeJoin | None = None
    work_dir: DevicePath | None = Field(
        default=None, description="Its HLS segments (default: a temporary directory)"
    )
    source_timeout: Seconds | None = 10.0
    vod: EdgeVod | None = None

    @classmethod
    def reader(cls) -> Callable[[Any], object]:
        from .edge import EdgeConfig as Read

        return Read.parse


# ------------------------------------------------------------------ storage

Bytes = Annotated[int, Field(ge=0, le=1 << 50)]


class StorageRecording(FunctionConfig):
    id: Name
    user: Name
    content: Name
    state: Literal["recording", "stopped", "deleted"] | None = "recording"


class StorageInput(FunctionConfig):
    id: Name
    port: RtpPort
    sources: Sources = None


class StorageQuota(FunctionConfig):
    default_bytes: Bytes | None = 1 << 30
    users: dict[Name, Bytes] | None = Field(default=None, max_length=1024)


class StorageConfig(_Checked):
    volume: DevicePath = Field(
        max_length=1024, description="Where recordings are written: below the node's --image-dir"
    )
    contents: list[StorageInput] | None = Field(default=None, max_length=16)
    recordings: list[StorageRecording] | None = Field(default=None, max_length=256)
    quota: StorageQuota | None = None
    http_port: Port | None = 8081
    bind: Address = "0.0.0.0"
    segment_s: float | None = Field(default=2.0, ge=0.5, le=30)
    secret: str | None = write_only(16, 256, "Playback needs a token made with this key")
    source_timeout: Seconds | None = 10.0

    @classmethod
    def reader(cls) -> Callable[[Any], object]:
        from .storage import StorageConfig as Read

        return Read.parse
