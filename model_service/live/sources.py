"""Live audio sources: what they are (specs, ids, URL checks) and how ffmpeg ones are run.

An ffmpeg source is started with an argument list (never a shell), decodes to 16 kHz mono
s16le on a pipe, and is restarted with capped exponential backoff when it fails. Clients give
a URL and nothing else: no ffmpeg option ever comes from a client.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
import ipaddress
import logging
import os
import re
import time
from typing import Any, Literal, Protocol
import unicodedata
from urllib.parse import urlsplit

from model_service import metrics
from model_service.modes import Mode
from model_service.redaction import redact_text, redact_url
from model_service.sensitivity import Sensitivity

_LOGGER = logging.getLogger(__name__)

Kind = Literal["ffmpeg", "push", "device"]
# Push sources are `idle` between streams by design (a satellite between utterances); `lost`
# when the pushing connection went away without push_stop, `stalled` when it stays but sends
# no audio. Both are deaf, like `retrying`, and clients must not show their detectors as clear.
State = Literal["connecting", "streaming", "retrying", "stopped", "idle", "stalled", "lost"]
KINDS: tuple[str, ...] = ("ffmpeg", "push", "device")
DEVICE_FORMATS: tuple[str, ...] = ("alsa", "pulse")
MAX_NAME = 100
MAX_URL = 2048

# Sample format on the pipe: what every source is turned into.
PIPE_ARGS: tuple[str, ...] = ("-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "pipe:1")

# The protocols ffmpeg may open for each URL scheme: what the stream itself needs, nothing a
# server's answer could turn into more. `file` is absent, so a playlist or redirect cannot make
# the service read local files; `udp` and `rtp` are absent, so an SDP file served over HTTP (or
# an RTSP server offering UDP transport) cannot make it bind ports on every interface where
# anyone on the network could inject audio. RTSP runs interleaved over TCP (`-rtsp_transport
# tcp`), which needs neither. HTTP(S) keep `crypto` for AES-encrypted HLS segments and each
# other for redirects between them.
_SCHEME_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "http": ("http", "https", "tcp", "tls", "crypto"),
    "https": ("http", "https", "tcp", "tls", "crypto"),
    "rtsp": ("rtsp", "tcp"),
    "rtsps": ("rtsps", "tcp", "tls"),
}


class SourceError(ValueError):
    """A source definition is invalid; the message says what to change."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What a source is: its identity, where its audio comes from and how it is analysed."""

    id: str
    name: str
    kind: Kind
    url: str | None = None
    device: str | None = None
    device_format: str | None = None
    sensitivity: Sensitivity | None = None
    origin: Literal["api", "config"] = "api"
    mode: Mode | None = None

    @property
    def persistent(self) -> bool:
        """Made through the API and kept in the data dir (config sources live in the config)."""
        return self.origin == "api"

    @property
    def scheme(self) -> str:
        """The URL scheme, or "file" for a plain path, or "" for push/device sources."""
        if self.url is None:
            return ""
        return urlsplit(self.url).scheme.lower() or "file"

    def to_saved(self) -> dict[str, Any]:
        """What is kept in the data dir for an API source."""
        return {
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "sensitivity": self.sensitivity,
            "mode": self.mode,
        }

    def wire_url(self) -> str | None:
        """The URL as shown to clients and in logs: any password replaced by ***."""
        return redact_url(self.url) if self.url is not None else None

    def with_changes(self, **changes: Any) -> SourceSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)


_SLUG_STRIP = re.compile(r"[^0-9a-z]+")


def slugify(name: str) -> str:
    """A stable, URL-safe id from a name ("Kitchen Cam #2" -> "kitchen_cam_2")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SLUG_STRIP.sub("_", ascii_name.lower()).strip("_")
    return slug[:48].rstrip("_") or "source"


def unique_id(name: str, taken: set[str] | frozenset[str]) -> str:
    """The slug of `name`, with `_2`, `_3`, ... appended until it is not taken."""
    base = slugify(name)
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def check_url(
    url: object,
    allowed_schemes: list[str] | tuple[str, ...],
    *,
    files: bool = True,
    hosts: list[str] | tuple[str, ...] | None = None,
) -> str:
    """Validate a source URL or plain path; return it (paths made absolute).

    `files=False` (a request's source) refuses plain paths: nothing a request says may make
    the service read its local files, nor tell whether one exists. `hosts`, when given, is
    the allow-list of hosts a network URL may name (see `host_allowed`).
    """
    if not isinstance(url, str) or not url.strip():
        raise SourceError("url must be a non-empty string")
    url = url.strip()
    if len(url) > MAX_URL:
        raise SourceError(f"url is longer than {MAX_URL} characters")
    if any(ord(ch) < 32 for ch in url):
        raise SourceError("url must not contain control characters")
    scheme = urlsplit(url).scheme.lower()
    allowed = {s.lower() for s in allowed_schemes}
    if (not scheme or scheme == "file") and not files:
        raise SourceError(
            "a file path can only be a source declared in the service's config file; "
            "through the API give an rtsp, rtsps, http or https URL"
        )
    if not scheme:
        # A plain path. Made absolute so that ffmpeg cannot read "-" (stdin) or a relative
        # name as something else; handed to ffmpeg as file:<path> (see ffmpeg_args).
        if url.startswith("-"):
            raise SourceError("a file path must not start with '-'")
        return os.path.abspath(os.path.expanduser(url))
    if scheme not in allowed:
        raise SourceError(
            f"URL scheme {scheme!r} is not allowed; use {', '.join(sorted(allowed))} or a "
            "plain file path (more schemes can be allowed with allowed_schemes in the config file)"
        )
    host = urlsplit(url).hostname
    if scheme in ("http", "https", "rtsp", "rtsps") and not host:
        raise SourceError(f"{url!r} has no host")
    if hosts is not None and not host_allowed(host or "", hosts):
        raise SourceError(
            f"host {host!r} is not in source_hosts, the service's list of hosts sources may "
            "use (config file)"
        )
    return url


def host_allowed(host: str, allowed: list[str] | tuple[str, ...]) -> bool:
    """Whether a URL's host is in an allow-list of names, addresses and networks.

    Matched as written in the URL, without DNS: a name matches the same name (any case) or
    `*.suffix`; an address matches the same address or a network (`192.168.1.0/24`).
    """
    host = host.lower().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in allowed:
        entry = raw.lower().strip()
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif entry == host or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SourceError("name must be a non-empty string")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise SourceError(f"name is longer than {MAX_NAME} characters")
    return name


def check_sensitivity(value: object) -> Sensitivity | None:
    """Validate an optional sensitivity (None: the service's default applies)."""
    if value is None:
        return None
    try:
        return Sensitivity.parse(value)
    except ValueError as err:
        raise SourceError(str(err)) from err


def check_mode(value: object) -> Mode | None:
    """Validate an optional mode (None: the service's default applies)."""
    if value is None:
        return None
    try:
        return Mode.parse(value)
    except ValueError as err:
        raise SourceError(str(err)) from err


def spec_from_request(
    body: Any,
    allowed_schemes: list[str] | tuple[str, ...],
    taken: set[str],
    *,
    hosts: list[str] | tuple[str, ...] | None = None,
) -> SourceSpec:
    """Build an API source from a POST body (`name` plus `url`, or `kind: push`)."""
    if not isinstance(body, dict):
        raise SourceError("the body must be a JSON object")
    unknown = sorted(set(body) - {"name", "url", "kind", "sensitivity", "mode"})
    if unknown:
        raise SourceError(f"unknown field(s): {', '.join(unknown)}")
    name = _check_name(body.get("name"))
    kind = body.get("kind", "ffmpeg" if "url" in body else None)
    sensitivity = check_sensitivity(body.get("sensitivity"))
    mode = check_mode(body.get("mode"))
    if kind == "push":
        if body.get("url") is not None:
            raise SourceError("a push source has no url")
        return SourceSpec(
            id=unique_id(name, taken), name=name, kind="push", sensitivity=sensitivity, mode=mode
        )
    if kind == "ffmpeg":
        url = check_url(body.get("url"), allowed_schemes, files=False, hosts=hosts)
        return SourceSpec(
            id=unique_id(name, taken),
            name=name,
            kind="ffmpeg",
            url=url,
            sensitivity=sensitivity,
            mode=mode,
        )
    if kind == "device":
        raise SourceError("capture device sources are declared in the config file")
    if kind is None:
        raise SourceError('give a "url" (rtsp, rtsps, http or https) or "kind": "push"')
    raise SourceError(f"unknown kind {kind!r}; use a url or kind push")


def spec_from_config(
    entry: Any, allowed_schemes: list[str] | tuple[str, ...], taken: set[str]
) -> SourceSpec:
    """Build a source declared in the config file.

    `{name, url}`, `{name, kind: push}` or `{name, kind: device, device: "hw:0", format:
    alsa|pulse}`; optional `id`, `sensitivity` and `mode`.
    """
    if not isinstance(entry, dict):
        raise SourceError("each entry of sources must be a mapping")
    unknown = sorted(
        set(entry) - {"id", "name", "url", "kind", "sensitivity", "mode", "device", "format"}
    )
    if unknown:
        raise SourceError(f"unknown field(s): {', '.join(unknown)}")
    name = _check_name(entry.get("name", entry.get("id")))
    source_id = entry.get("id")
    if source_id is not None:
        if not isinstance(source_id, str) or slugify(source_id) != source_id:
            raise SourceError(f"id {source_id!r} must be lowercase letters, digits and _")
        if source_id in taken:
            raise SourceError(f"id {source_id!r} is used twice")
    else:
        source_id = unique_id(name, taken)
    sensitivity = check_sensitivity(entry.get("sensitivity"))
    mode = check_mode(entry.get("mode"))
    kind = entry.get("kind", "ffmpeg" if "url" in entry else None)
    if kind == "ffmpeg":
        url = check_url(entry.get("url"), allowed_schemes)
        return SourceSpec(
            id=source_id,
            name=name,
            kind="ffmpeg",
            url=url,
            sensitivity=sensitivity,
            mode=mode,
            origin="config",
        )
    if kind == "push":
        return SourceSpec(
            id=source_id,
            name=name,
            kind="push",
            sensitivity=sensitivity,
            mode=mode,
            origin="config",
        )
    if kind == "device":
        device = entry.get("device", "default")
        fmt = entry.get("format", "alsa")
        if fmt not in DEVICE_FORMATS:
            raise SourceError(f"device format must be one of {', '.join(DEVICE_FORMATS)}")
        if not isinstance(device, str) or not device or device.startswith("-"):
            raise SourceError("device must be a device name such as default or hw:0")
        return SourceSpec(
            id=source_id,
            name=name,
            kind="device",
            device=device,
            device_format=fmt,
            sensitivity=sensitivity,
            mode=mode,
            origin="config",
        )
    raise SourceError('give a "url", or "kind": "push" or "device"')


def spec_from_saved(source_id: str, data: dict[str, Any]) -> SourceSpec:
    """Rebuild an API source saved in the data dir."""
    kind = data.get("kind")
    if kind not in ("ffmpeg", "push"):
        raise SourceError(f"saved source has an unknown kind {kind!r}")
    url = data.get("url") if kind == "ffmpeg" else None
    if url is not None and (not urlsplit(url).scheme or urlsplit(url).scheme.lower() == "file"):
        # Made through the API before file paths were refused there.
        raise SourceError(
            "a file path made through the API is no longer allowed; declare it in the config file"
        )
    return SourceSpec(
        id=source_id,
        name=_check_name(data.get("name")),
        kind=kind,
        url=url,
        sensitivity=check_sensitivity(data.get("sensitivity")),
        mode=check_mode(data.get("mode")),
    )


def ffmpeg_args(spec: SourceSpec, ffmpeg: str = "ffmpeg", *, io_timeout: float = 15.0) -> list[str]:
    """The full ffmpeg command line (program first) for an ffmpeg or device source."""
    args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
    timeout_us = str(int(io_timeout * 1_000_000))
    if spec.kind == "device":
        assert spec.device is not None
        assert spec.device_format is not None
        return [*args, "-f", spec.device_format, "-i", spec.device, *PIPE_ARGS]
    if spec.url is None:
        raise SourceError(f"source {spec.id} has no url")
    scheme = spec.scheme
    if scheme == "file":
        path = spec.url
        # file: keeps ffmpeg from reading "name:rest" as a protocol; the whitelist keeps a
        # crafted media file (a playlist, concat script) from reaching anything but files.
        return [
            *args,
            "-protocol_whitelist",
            "file",
            "-i",
            f"file:{path}",
            *PIPE_ARGS,
        ]
    # A scheme an operator allowed in the config file opens only its own protocol.
    whitelist = ",".join(sorted(set(_SCHEME_PROTOCOLS.get(scheme, (scheme,)))))
    args += ["-protocol_whitelist", whitelist]
    if scheme in ("rtsp", "rtsps"):
        # TCP: UDP through NAT or Wi-Fi loses packets silently; -timeout is RTSP's socket timeout.
        args += ["-rtsp_transport", "tcp", "-timeout", timeout_us]
    else:
        args += ["-rw_timeout", timeout_us]
    return [*args, "-i", spec.url, *PIPE_ARGS]


class AudioSink(Protocol):
    """Where a running source delivers audio (the stream pipeline)."""

    def begin_run(self, first_chunk_seconds: float) -> None:
        """A new continuous run of audio starts (after a connect); reset stream state."""

    async def feed(self, pcm: bytes) -> None:
        """Take s16le 16 kHz mono bytes (even length); waits while analysis is behind."""

    async def end_run(self) -> None:
        """The run ended: analyse what is left and end ongoing events."""

    def set_state(self, state: State, error: str | None = None) -> None:
        """Report the source's state."""


@dataclass(kw_only=True)
class Backoff:
    """Capped exponential backoff (seconds)."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    attempt: int = field(default=0)

    def next_delay(self) -> float:
        """The delay before the next retry; each call doubles it up to the cap."""
        delay = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start from the initial delay again (after a run that streamed for a while)."""
        self.attempt = 0


class FfmpegRunner:
    """Runs one ffmpeg (or capture device) source until stopped, restarting it when it fails."""

    CHUNK = 3200 * 2  # 0.2 s of s16le: small enough for low latency, big enough to be cheap
    STDERR_KEEP = 4096

    def __init__(
        self,
        spec: SourceSpec,
        sink: AudioSink,
        *,
        ffmpeg: str = "ffmpeg",
        read_timeout: float = 15.0,
        backoff: Backoff | None = None,
        stable_after: float = 30.0,
    ) -> None:
        """Prepare (not start) a runner; `read_timeout` detects a stalled stream."""
        self.spec = spec
        self.sink = sink
        self.ffmpeg = ffmpeg
        self.read_timeout = read_timeout
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()

    def start(self) -> None:
        """Start the run/retry loop as a task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"source-{self.spec.id}"
            )

    async def stop(self) -> None:
        """Stop ffmpeg and the loop; the run's tail is analysed and ongoing events end."""
        self._stopping = True
        self._stop_event.set()
        await self._kill()
        if self._task is not None:
            task, self._task = self._task, None
            # The loop notices the stop, finishes the run and exits by itself; cancel only
            # if it hangs (a sink stuck on a full queue).
            done, _ = await asyncio.wait({task}, timeout=10.0)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5.0)

    async def _loop(self) -> None:
        try:
            while not self._stopping:
                outcome, error, streamed = await self._run_once()
                if self._stopping:
                    break
                if outcome == "ended":
                    _LOGGER.info("Source %s reached its end", self.spec.id)
                    self.sink.set_state("stopped", None)
                    return
                metrics.SOURCE_RESTARTS.labels(source=self.spec.id).inc()
                if streamed >= self.stable_after:
                    self.backoff.reset()
                delay = self.backoff.next_delay()
                if error:
                    error = redact_text(error, self.spec.url)
                _LOGGER.warning(
                    "Source %s %s; retrying in %.0f s", self.spec.id, error or "ended", delay
                )
                self.sink.set_state("retrying", error)
                await self._sleep(delay)
        finally:
            if self._stopping:
                self.sink.set_state("stopped", None)

    async def _sleep(self, delay: float) -> None:
        # Waits on the stop event, so that stop() ends a long backoff at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), delay)

    async def _run_once(self) -> tuple[Literal["ended", "failed"], str | None, float]:
        """One ffmpeg process from start to exit: (outcome, error, seconds it streamed)."""
        self.sink.set_state("connecting", None)
        args = ffmpeg_args(self.spec, self.ffmpeg, io_timeout=self.read_timeout)
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as err:
            return "failed", f"cannot start {self.ffmpeg}: {err.strerror}", 0.0
        self._proc = proc
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr_tail = bytearray()
        stderr_task = asyncio.create_task(self._drain_stderr(proc.stderr, stderr_tail))
        started: float | None = None
        stalled = False
        eof = False
        leftover = b""
        try:
            while not self._stopping:
                try:
                    chunk = await asyncio.wait_for(proc.stdout.read(self.CHUNK), self.read_timeout)
                except TimeoutError:
                    stalled = True
                    break
                if not chunk:
                    eof = True
                    break
                if started is None:
                    started = time.monotonic()
                    self.sink.begin_run(len(chunk) / 32000.0)
                    self.sink.set_state("streaming", None)
                data = leftover + chunk
                # A read can end between the two bytes of a sample; keep the odd byte.
                cut = len(data) - (len(data) % 2)
                leftover = data[cut:]
                if cut:
                    await self.sink.feed(data[:cut])
        finally:
            rc = await self._reap(proc, kill=not eof)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stderr_task, 2.0)
            self._proc = None
            if started is not None:
                await self.sink.end_run()
        streamed = 0.0 if started is None else time.monotonic() - started
        if self._stopping:
            return "failed", None, streamed
        message = _last_line(bytes(stderr_tail))
        if stalled:
            return "failed", f"no audio for {self.read_timeout:.0f} s (stream stalled)", streamed
        # A file or an HTTP resource that reaches its end is done, not broken: ffmpeg exits
        # 0 and says nothing. A dropped connection also exits 0 but logs an error.
        if (
            rc == 0
            and not message
            and self.spec.kind == "ffmpeg"
            and self.spec.scheme
            in (
                "file",
                "http",
                "https",
            )
        ):
            return "ended", None, streamed
        if rc == 0 and not message:
            message = "the stream ended"
        return "failed", message or f"ffmpeg exited with code {rc}", streamed

    @staticmethod
    async def _reap(proc: asyncio.subprocess.Process, *, kill: bool) -> int:
        """Wait for ffmpeg to exit, killing it if we are abandoning it (or it lingers)."""
        # After EOF ffmpeg exits by itself: killing it then would race with its exit (Popen
        # polls before signalling and can reap the child under asyncio's watcher, which then
        # reports exit code 255), so give it a moment first.
        if not kill:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(proc.wait(), 10.0)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        return await proc.wait()

    async def _drain_stderr(self, stream: asyncio.StreamReader, tail: bytearray) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            tail.extend(line)
            if len(tail) > self.STDERR_KEEP:
                del tail[: len(tail) - self.STDERR_KEEP]


def _last_line(stderr: bytes) -> str:
    """The last meaningful line ffmpeg wrote, with any URL password hidden."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1][:300]
    return re.sub(r"(\w+://[^:/@\s]*:)[^@\s]*@", r"\1***@", line)
