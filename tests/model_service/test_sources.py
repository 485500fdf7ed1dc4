"""Source definitions, URL checks, ffmpeg command lines and the run/retry loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from model_service.config import DEFAULT_SCHEMES
from model_service.live.sources import (
    Backoff,
    FfmpegRunner,
    SourceError,
    SourceSpec,
    check_url,
    ffmpeg_args,
    slugify,
    spec_from_config,
    spec_from_request,
    spec_from_saved,
    unique_id,
)
from model_service.redaction import redact_text, redact_url
from tests.model_service.live_helpers import AudioServer, quiet, wav_bytes

ALLOWED = list(DEFAULT_SCHEMES)


def test_slugs_are_stable_and_unique() -> None:
    """Ids are slugs of names, made unique with a suffix."""
    assert slugify("Kitchen") == "kitchen"
    assert slugify("  Living Room / Cam #2 ") == "living_room_cam_2"
    assert slugify("Küche") == "kuche"
    assert slugify("!!!") == "source"
    assert unique_id("Kitchen", {"kitchen", "kitchen_2"}) == "kitchen_3"
    assert unique_id("Hall", set()) == "hall"


@pytest.mark.parametrize(
    "url",
    ["rtsp://cam/stream", "rtsps://cam:322/s", "http://h/a.mp3", "HTTPS://h/x", "/srv/a.wav"],
)
def test_allowed_urls(url: str) -> None:
    """rtsp, rtsps, http, https and plain paths are accepted."""
    assert check_url(url, ALLOWED)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/a.wav",
        "file:/etc/passwd",
        "pipe:0",
        "concat:/a.wav|/b.wav",
        "subfile:,,start,0,end,0,,:/a.wav",
        "-",
        "-i /dev/zero",
        "http:///nohost",
        "",
        "rtsp://cam/\nstream",
        5,
    ],
)
def test_refused_urls(url: object) -> None:
    """Other schemes, ffmpeg pseudo-protocols, option-like paths and junk are refused."""
    with pytest.raises(SourceError):
        check_url(url, ALLOWED)


def test_config_can_allow_more_schemes() -> None:
    """allowed_schemes in the config file widens the list."""
    with pytest.raises(SourceError):
        check_url("srt://h:9000", ALLOWED)
    assert check_url("srt://h:9000", [*ALLOWED, "srt"]) == "srt://h:9000"


def test_plain_paths_become_absolute(tmp_path: Path, monkeypatch) -> None:
    """A relative path is made absolute, so ffmpeg cannot read it as anything else."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError):
        check_url("a:b.wav", ALLOWED)  # reads as scheme "a"; "./a:b.wav" is the way to say it
    assert check_url("./a:b.wav", ALLOWED) == str(tmp_path / "a:b.wav")
    assert check_url("sounds/a.wav", ALLOWED) == str(tmp_path / "sounds" / "a.wav")


def test_requests_cannot_name_local_files(tmp_path: Path) -> None:
    """A request's source may not be a file path (nor file:): the service must not read, or
    say whether there is, a file because a request asked. The config file still may."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    errors = []
    for url in (str(secret), str(tmp_path / "missing.wav"), f"file:{secret}", "./a.wav"):
        with pytest.raises(SourceError) as caught:
            spec_from_request({"name": "F", "url": url}, [*ALLOWED, "file"], set())
        errors.append(str(caught.value))
    # The same answer whether the file exists or not.
    assert len(set(errors)) == 1 and "config file" in errors[0]
    assert spec_from_config({"name": "F", "url": str(secret)}, ALLOWED, set()).url == str(secret)
    with pytest.raises(SourceError, match="config file"):
        spec_from_saved("f", {"name": "F", "kind": "ffmpeg", "url": str(secret)})


def test_source_hosts_allow_list() -> None:
    """With source_hosts set, a request's URL must name a listed host (as written)."""
    hosts = ["camera.local", "*.cams.lan", "192.168.1.0/24", "fd00::/8"]
    for ok in (
        "rtsp://camera.local/s",
        "rtsp://CAMERA.local:554/s",
        "http://door.cams.lan/a",
        "rtsps://user:pw@192.168.1.20/s",
        "http://[fd00::5]:8080/a",
    ):
        assert spec_from_request({"name": "C", "url": ok}, ALLOWED, set(), hosts=hosts)
    for bad in (
        "http://127.0.0.1:8765/v1/info",
        "http://localhost/x",
        "rtsp://192.168.2.1/s",
        "http://cams.lan.evil.com/a",
        "http://[::1]/a",
        "http://2130706433/x",
    ):
        with pytest.raises(SourceError, match="source_hosts"):
            spec_from_request({"name": "C", "url": bad}, ALLOWED, set(), hosts=hosts)
    # Without the list, any host (the default, documented).
    assert spec_from_request({"name": "C", "url": "http://127.0.0.1/x"}, ALLOWED, set())


def test_request_and_config_specs() -> None:
    """POST bodies and config entries become specs; bad ones say why."""
    push = spec_from_request(
        {"name": "Hall", "kind": "push", "sensitivity": "high"}, ALLOWED, set()
    )
    assert (push.id, push.kind, push.sensitivity, push.persistent) == ("hall", "push", "high", True)
    cam = spec_from_request({"name": "Cam", "url": "rtsp://c/s"}, ALLOWED, {"cam"})
    assert (cam.id, cam.kind) == ("cam_2", "ffmpeg")
    for bad, message in (
        ({"name": "x", "kind": "device"}, "config file"),
        ({"name": "x", "kind": "push", "url": "rtsp://a/b"}, "no url"),
        ({"name": "x", "kind": "push", "sensitivity": "max"}, "sensitivity"),
        ({"name": "x", "url": "rtsp://a/b", "args": ["-f"]}, "unknown field"),
        ({"kind": "push"}, "name"),
        ({"name": "x", "kind": "ffmpeg"}, "url"),
    ):
        with pytest.raises(SourceError, match=message):
            spec_from_request(bad, ALLOWED, set())
    mic = spec_from_config(
        {"name": "Mic", "kind": "device", "format": "pulse", "device": "alsa_input.usb"},
        ALLOWED,
        set(),
    )
    assert (mic.id, mic.kind, mic.origin, mic.persistent) == ("mic", "device", "config", False)
    with pytest.raises(SourceError):
        spec_from_config({"name": "Mic", "kind": "device", "format": "oss"}, ALLOWED, set())
    with pytest.raises(SourceError):
        spec_from_config({"name": "Mic", "kind": "device", "device": "-f"}, ALLOWED, set())
    with pytest.raises(SourceError, match="twice"):
        spec_from_config({"id": "a", "name": "A", "kind": "push"}, ALLOWED, {"a"})
    with pytest.raises(SourceError):
        spec_from_config({"id": "Not A Slug", "name": "A", "kind": "push"}, ALLOWED, set())
    saved = spec_from_saved("cam", cam.to_saved())
    assert (saved.kind, saved.url, saved.name) == ("ffmpeg", "rtsp://c/s", "Cam")


def test_ffmpeg_command_lines() -> None:
    """Argument lists (no shell), 16 kHz mono s16le on stdout, timeouts, no client options."""
    rtsp = ffmpeg_args(
        SourceSpec(id="c", name="C", kind="ffmpeg", url="rtsp://u:p@cam/s"), io_timeout=5
    )
    assert rtsp[:5] == ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    assert rtsp[rtsp.index("-rtsp_transport") + 1] == "tcp"
    assert rtsp[rtsp.index("-timeout") + 1] == "5000000"
    assert rtsp[rtsp.index("-i") + 1] == "rtsp://u:p@cam/s"
    assert rtsp[-8:] == ["-vn", "-ac", "1", "-ar", "16000", "-f", "s16le", "pipe:1"]
    assert "file" not in rtsp[rtsp.index("-protocol_whitelist") + 1].split(",")
    http = ffmpeg_args(SourceSpec(id="h", name="H", kind="ffmpeg", url="https://h/a.mp3"))
    assert "-rw_timeout" in http
    path = ffmpeg_args(SourceSpec(id="f", name="F", kind="ffmpeg", url="/srv/a:b.wav"))
    assert path[path.index("-i") + 1] == "file:/srv/a:b.wav"
    assert path[path.index("-protocol_whitelist") + 1] == "file"
    mic = ffmpeg_args(
        SourceSpec(id="m", name="M", kind="device", device="hw:1", device_format="alsa"),
        "/opt/ffmpeg",
    )
    assert mic[0] == "/opt/ffmpeg"
    assert mic[mic.index("-f") : mic.index("-f") + 4] == ["-f", "alsa", "-i", "hw:1"]


def test_redaction_and_backoff() -> None:
    """Passwords never appear in what clients see; backoff doubles up to its cap."""
    assert (
        redact_url("rtsp://admin:secret@10.0.0.2:554/s?x=1")
        == "rtsp://admin:***@10.0.0.2:554/s?x=1"
    )
    assert redact_url("http://h/a") == "http://h/a"
    backoff = Backoff(initial=1.0, maximum=5.0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


class FakeSink:
    """Records what a runner delivers."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str | None]] = []
        self.runs = 0
        self.ended = 0
        self.data = bytearray()
        self.changed = asyncio.Event()

    def begin_run(self, first_chunk_seconds: float = 0.0) -> None:
        self.runs += 1

    async def feed(self, pcm: bytes) -> None:
        assert len(pcm) % 2 == 0
        self.data.extend(pcm)

    async def end_run(self) -> None:
        self.ended += 1

    def set_state(self, state, error=None) -> None:
        self.states.append((state, error))
        self.changed.set()

    async def wait_state(self, state: str, timeout: float = 15.0) -> str | None:
        async def wait() -> str | None:
            while True:
                for s, e in self.states:
                    if s == state:
                        return e
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), timeout)


async def test_file_source_ends_cleanly(tmp_path: Path) -> None:
    """A file decodes to 16 kHz mono s16le; reaching its end stops the source without an error."""
    audio = quiet(3.0)
    path = tmp_path / "room tone.wav"
    path.write_bytes(wav_bytes(audio))
    sink = FakeSink()
    spec = spec_from_config({"name": "F", "url": str(path)}, ALLOWED, set())
    runner = FfmpegRunner(spec, sink)
    runner.start()
    assert await sink.wait_state("stopped") is None
    await runner.stop()
    got = np.frombuffer(bytes(sink.data), "<i2")
    assert got.size == audio.size
    assert (sink.runs, sink.ended) == (1, 1)
    assert [s for s, _ in sink.states][:2] == ["connecting", "streaming"]


async def test_missing_file_retries_with_error(tmp_path: Path) -> None:
    """A source that fails is retried with backoff, its error reported."""
    sink = FakeSink()
    spec = spec_from_config({"name": "F", "url": str(tmp_path / "nope.wav")}, ALLOWED, set())
    runner = FfmpegRunner(spec, sink, backoff=Backoff(initial=0.05, maximum=0.1))
    runner.start()
    error = await sink.wait_state("retrying")
    assert "No such file" in (error or "")
    await asyncio.sleep(0.5)
    await runner.stop()
    assert sum(1 for s, _ in sink.states if s == "connecting") >= 3
    assert sink.states[-1] == ("stopped", None)
    assert sink.runs == 0


async def test_http_drop_is_a_failure_not_an_end() -> None:
    """An HTTP stream cut short is retried (not taken for a clean end)."""
    async with AudioServer(wav_bytes(quiet(4.0))) as server:
        sink = FakeSink()
        spec = spec_from_request({"name": "H", "url": server.url("drop.wav")}, ALLOWED, set())
        runner = FfmpegRunner(spec, sink, backoff=Backoff(initial=0.05, maximum=0.1))
        runner.start()
        error = await sink.wait_state("retrying")
        await runner.stop()
    assert error
    assert sink.runs >= 1
    assert sink.ended == sink.runs


async def test_stop_interrupts_a_long_backoff(tmp_path: Path) -> None:
    """stop() returns at once even while the runner waits a minute to retry."""
    sink = FakeSink()
    spec = spec_from_config({"name": "F", "url": str(tmp_path / "nope.wav")}, ALLOWED, set())
    runner = FfmpegRunner(spec, sink, backoff=Backoff(initial=60.0))
    runner.start()
    await sink.wait_state("retrying")
    started = asyncio.get_running_loop().time()
    await runner.stop()
    assert asyncio.get_running_loop().time() - started < 2.0


@pytest.mark.parametrize(
    ("url", "protocols"),
    [
        ("http://cam/a.mp3", {"http", "https", "tcp", "tls", "crypto"}),
        ("https://cam/live.m3u8", {"http", "https", "tcp", "tls", "crypto"}),
        ("rtsp://u:p@cam/s", {"rtsp", "tcp"}),
        ("rtsps://cam/s", {"rtsps", "tcp", "tls"}),
        # A scheme an operator allows in the config file opens only its own protocol.
        ("srt://cam:9000", {"srt"}),
        ("/srv/a.wav", {"file"}),
    ],
)
def test_protocol_whitelist_per_scheme(url: str, protocols: set[str]) -> None:
    """Each scheme opens only what its stream needs: never udp or rtp (an SDP answer would
    bind ports on every interface), never file from a network URL, never pipe."""
    args = ffmpeg_args(SourceSpec(id="s", name="S", kind="ffmpeg", url=url))
    allowed = set(args[args.index("-protocol_whitelist") + 1].split(","))
    assert allowed == protocols
    assert not allowed & {"udp", "rtp", "srtp", "pipe", "fd", "concat", "subfile", "data"}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:pa/ss@cam/live", "rtsp://admin:***@cam/live"),
        ("rtsp://u:p@ss@cam:554/x?y=1", "rtsp://u:***@cam:554/x?y=1"),
        ("rtsp://u:p@ss/x@[fe80::1]:554/s", "rtsp://u:***@[fe80::1]:554/s"),
        ("http://u:pass word@h/x", "http://u:***@h/x"),
        ("rtsp://u:p#x@cam/s", "rtsp://u:***@cam/s"),
        ("rtsp://u:p%40x@cam", "rtsp://u:***@cam"),
        ("openai:http://key:sec/ret@gpu:8000/v1", "openai:http://key:***@gpu:8000/v1"),
        ("rtsp://admin@cam/x", "rtsp://admin@cam/x"),
        ("rtsp://cam/a@b", "rtsp://cam/a@b"),
        ("http://h/x?q=ab@c", "http://h/x?q=ab@c"),
    ],
)
def test_passwords_are_redacted_whatever_they_hold(url: str, shown: str) -> None:
    """A password with `/`, `@`, `#`, a space or percent-escapes is still hidden, in the URL
    and wherever else a message repeats it."""
    assert redact_url(url) == shown
    message = f"{url}: Connection refused (tried {url.split('://', 1)[1]})"
    redacted = redact_text(message, url)
    assert redacted.startswith(shown)
    if shown != url:
        password = url.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
        assert password not in redacted
