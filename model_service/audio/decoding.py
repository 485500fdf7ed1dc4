"""Audio intake: turn every upload into float32 mono 16 kHz samples, or a clear error."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from fractions import Fraction
import io
import math
import os
import re
import tempfile
import wave
import weakref

import aiohttp
import numpy as np
from scipy.signal import resample_poly
import soundfile as sf

from model_service.arrays import Array, Samples

SAMPLE_RATE = 16000
"""The rate every decoded clip has; the taggers and the event logic assume it."""

MIN_RATE = 1000
MAX_RATE = 384000
MAX_L16_CHANNELS = 64
DEFAULT_MAX_SECONDS = 3600.0

# resample_poly designs a filter of 20 * max(up, down) + 1 taps for every call. A prime-ish rate
# such as 383999 Hz reduces to 16000/383999: a 7.7 M-tap filter, measured at 2 s of CPU for a
# 5 s clip. Past this denominator the ratio is approximated by the closest fraction instead,
# keeping the filter under 0.5 M taps. The rate error is then at most 1/20000 and usually far
# less (2.6e-6 for 383999 Hz: 9 ms per hour), a time stretch no tagger can notice. Every
# common rate reduces exactly (44100 -> 160/441, 11025 -> 640/441).
_MAX_POLYPHASE_DOWN = 20_000

# read_limited asks the stream for at most this much at once so the overshoot past the limit
# stays small whatever the client sends.
_READ_CHUNK = 64 * 1024

# Containers libsndfile reads directly (no subprocess): WAV in all its PCM/float flavours, RF64,
# FLAC, OGG (Vorbis, Opus, FLAC), AIFF, AU and CAF. Anything else goes to ffmpeg.
_SOUNDFILE_KINDS = frozenset({"wav", "flac", "ogg", "aiff", "au", "caf"})

# ISO base media (MP4/M4A/MOV/3GP) boxes that can open a file. These files usually keep their
# index ("moov") after the audio data; ffmpeg cannot seek back in a pipe and fails with
# "partial file" once the data is larger than its read buffer, so they go through a temp file.
_ISO_BMFF_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})

# libsndfile reports this frame count when the header does not say (a streamed FLAC).
_SF_UNKNOWN_LENGTH = 2**63 - 1

_STDERR_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+")
_STDERR_LIMIT = 400


class AudioError(ValueError):
    """Audio that cannot be used; the message is shown to API users as is."""


class AudioTooLargeError(AudioError):
    """An upload past the size limit, or audio longer than the allowed duration."""


class FFmpegNotFoundError(AudioError):
    """The ffmpeg binary needed for this format is not installed (or not executable)."""


@dataclass(frozen=True, slots=True, eq=False)
class Decoded:
    """A decoded clip.

    `samples` is float32 mono at 16 kHz (nominally in [-1, 1]; float sources may exceed it).
    `source_rate` and `source_channels` describe the upload; they are 0 when ffmpeg decoded it,
    because ffmpeg is run quietly and resamples and downmixes itself. `format` is what the
    upload was recognised as ("wav", "flac", "ogg", "l16", "s16le", "mp3", "mp4", ...).
    """

    samples: Samples
    source_rate: int
    source_channels: int
    duration: float
    format: str


class _SoundfileUnreadableError(Exception):
    """libsndfile could not read the data; ffmpeg gets a try."""


def parse_l16(content_type: str | None) -> tuple[int, int, bool] | None:
    """Parse a raw PCM content type into `(rate, channels, big_endian)`.

    Returns None when the content type is not raw PCM. `audio/L16` is big-endian: RFC 2586
    and RFC 3551 define it in network byte order, like every RTP payload. Many clients send
    little-endian anyway, so `endianness=little-endian` is accepted, and `audio/s16le` names
    little-endian PCM outright. Raises AudioError for a raw PCM type with bad parameters.
    """
    if not content_type:
        return None
    media_type, _, raw_params = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type == "audio/l16":
        big_endian = True
    elif media_type == "audio/s16le":
        big_endian = False
    else:
        return None

    params: dict[str, str] = {}
    for part in raw_params.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise AudioError(
                f"malformed parameter {part.strip()!r} in content type {content_type!r}"
            )
        params[key.strip().lower()] = value.strip().strip('"').strip()

    if "rate" not in params:
        raise AudioError(
            f"{media_type} needs a rate parameter, e.g. audio/L16;rate=16000;channels=1"
        )
    rate = _int_param(params["rate"], "rate")
    _check_rate(rate)
    channels = _int_param(params.get("channels", "1"), "channels")
    if not 1 <= channels <= MAX_L16_CHANNELS:
        raise AudioError(f"channel count {channels} is outside the supported 1-{MAX_L16_CHANNELS}")

    endianness = params.get("endianness", "").lower()
    if endianness in ("little-endian", "little", "le"):
        if media_type == "audio/l16":
            big_endian = False
    elif endianness in ("big-endian", "big", "be"):
        if not big_endian:
            raise AudioError("audio/s16le is little-endian; it cannot be endianness=big-endian")
    elif endianness:
        raise AudioError(
            f"unknown endianness {endianness!r}: use big-endian (the L16 default) or little-endian"
        )
    return rate, channels, big_endian


def _int_param(value: str, name: str) -> int:
    """Parse a whole-number content type parameter."""
    try:
        return int(value, 10)
    except ValueError:
        raise AudioError(f"the {name} parameter must be a whole number, not {value!r}") from None


def pcm16_to_float(data: bytes, *, big_endian: bool = False) -> Array:
    """Convert signed 16-bit PCM bytes into float32 samples in [-1, 1).

    Interleaved channels stay interleaved. Raises AudioError for an odd byte count.
    """
    if len(data) % 2:
        raise AudioError(
            f"16-bit PCM has an odd number of bytes ({len(data)}): every sample takes 2 bytes"
        )
    pcm = np.frombuffer(data, dtype=">i2" if big_endian else "<i2")
    # 32768 rather than 32767: the full int16 range maps onto [-1, 1) without clipping.
    return pcm.astype(np.float32) / np.float32(32768.0)


def to_wav_bytes(samples: Samples, rate: int = SAMPLE_RATE) -> bytes:
    """Encode samples (mono, or frames x channels) as a 16-bit PCM WAV file.

    Float values beyond [-1, 1] are clipped rather than wrapped, NaN becomes silence; int16
    samples (a live source's ring buffer) are written as they are.
    """
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, not {rate}")
    audio: Samples = np.asarray(samples)
    is_pcm = audio.dtype == np.int16
    if not is_pcm:
        audio = audio.astype(np.float32, copy=False)
    if audio.ndim == 1:
        channels = 1
    elif audio.ndim == 2:
        channels = audio.shape[1]
    else:
        raise ValueError(f"expected mono or frames x channels samples, got shape {audio.shape}")
    # Clip first: scaling a huge float by 32767 would overflow to inf before the int cast.
    if is_pcm:
        pcm = audio.astype("<i2", copy=False)
    else:
        audio = np.clip(np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        pcm = np.round(audio * np.float32(32767.0)).astype("<i2")

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(int(rate))
        wav.writeframes(pcm.tobytes())
    return buffer.getvalue()


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Read a request body, raising AudioTooLargeError as soon as it passes `limit` bytes.

    At most one small chunk past the limit is ever held, so an oversized upload is refused
    without being pulled into memory.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    chunks: list[bytes] = []
    total = 0
    while True:
        # Asking for one byte more than the remaining allowance is what detects the overflow.
        chunk = await stream.read(min(_READ_CHUNK, limit - total + 1))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise AudioTooLargeError(f"upload is over the limit of {_human_bytes(limit)}")
        chunks.append(chunk)


def _human_bytes(count: int) -> str:
    """Format a byte count for an error message."""
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MiB ({count} bytes)"
    return f"{count} bytes"


# At most this many uploads decode at once (each holds its 16 kHz output, up to ~230 MB for
# an hour, and a core); the others wait their turn instead of multiplying the memory.
DECODE_SLOTS = max(2, os.cpu_count() or 1)
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _decode_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(DECODE_SLOTS)
    return slots


async def decode(
    data: bytes,
    content_type: str | None,
    *,
    ffmpeg: str = "ffmpeg",
    timeout: float = 30.0,  # noqa: ASYNC109 - bounds the ffmpeg subprocess, not this call
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Decoded:
    """Decode an upload into float32 mono 16 kHz samples.

    Raw PCM is recognised by its content type (see `parse_l16`); everything else by its
    first bytes, because clients often send files as application/octet-stream. WAV, FLAC and
    OGG are read by libsndfile in a worker thread; anything else (MP3, AAC, Opus in WebM, ...)
    is decoded by an ffmpeg subprocess bounded by `timeout` seconds. Raises AudioError for
    empty, undecodable or non-finite audio and AudioTooLargeError past `max_seconds`.
    """
    if not data:
        raise AudioError("audio is empty")
    async with _decode_slots():
        return await _decode(data, content_type, ffmpeg, timeout, max_seconds)


async def _decode(
    data: bytes,
    content_type: str | None,
    ffmpeg: str,
    timeout: float,  # noqa: ASYNC109 - bounds the ffmpeg subprocess
    max_seconds: float,
) -> Decoded:
    l16 = parse_l16(content_type)
    if l16 is not None:
        rate, channels, big_endian = l16
        return await asyncio.to_thread(_decode_l16, data, rate, channels, big_endian, max_seconds)

    kind = _sniff(data)
    soundfile_error: str | None = None
    if kind in _SOUNDFILE_KINDS:
        try:
            return await asyncio.to_thread(_decode_soundfile, data, kind, max_seconds)
        except _SoundfileUnreadableError as err:
            # A WAV flavour or OGG codec libsndfile lacks (ADPCM variants, OGG Speex...) may
            # still be fine for ffmpeg.
            soundfile_error = str(err)
    return await _decode_ffmpeg(
        data,
        kind,
        ffmpeg=ffmpeg,
        timeout=timeout,
        max_seconds=max_seconds,
        soundfile_error=soundfile_error,
    )


def _sniff(data: bytes) -> str:
    """Name the container from its magic bytes ("unknown" when nothing matches)."""
    head = data[:16]
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b".snd":
        return "au"
    if head[:4] == b"caff":
        return "caf"
    if head[4:8] in _ISO_BMFF_BOXES:
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # Both are 0xFFF-ish frame syncs; ADTS has layer bits 00, which MPEG audio never uses.
        return "aac" if head[1] & 0xF6 == 0xF0 else "mp3"
    if head[:5] == b"#!AMR":
        return "amr"
    return "unknown"


def _decode_l16(
    data: bytes, rate: int, channels: int, big_endian: bool, max_seconds: float
) -> Decoded:
    """Decode raw 16-bit PCM (runs in a worker thread)."""
    if len(data) % 2:
        raise AudioError(
            f"L16 audio has an odd number of bytes ({len(data)}): every sample takes 2 bytes"
        )
    frame_bytes = 2 * channels
    if len(data) % frame_bytes:
        raise AudioError(
            f"L16 audio of {len(data)} bytes is not a whole number of frames: with {channels} "
            f"channels every frame takes {frame_bytes} bytes"
        )
    _check_length(len(data) // frame_bytes, rate, max_seconds)
    frames = pcm16_to_float(data, big_endian=big_endian).reshape(-1, channels)
    mono, bad = _downmix(frames)
    return _finish(
        mono,
        rate,
        "l16" if big_endian else "s16le",
        max_seconds,
        channels=channels,
        bad=bad,
        total=frames.size,
    )


def _decode_soundfile(data: bytes, kind: str, max_seconds: float) -> Decoded:
    """Decode a file libsndfile understands (runs in a worker thread).

    Blocks are downmixed and resampled to 16 kHz as they decode, so memory follows the
    16 kHz output whatever rate, channel count and length the file claims or holds.
    """
    bad = total = 0
    try:
        with sf.SoundFile(io.BytesIO(data)) as audio_file:
            rate = int(audio_file.samplerate)
            channels = int(audio_file.channels)
            _check_rate(rate)
            if 0 < audio_file.frames < _SF_UNKNOWN_LENGTH:
                # An honest header lets an overlong file be refused before decoding it.
                _check_length(audio_file.frames, rate, max_seconds)
            # Blocks of about 4 M values, downmixed as they come: the header's frame count is
            # only a claim (a tiny FLAC can announce an hour of 8-channel audio), so memory
            # follows what actually decodes, and only as mono.
            block_frames = max(4096, 4_000_000 // channels)
            resampler = StreamingResampler(rate)
            frames_read = 0
            while True:
                block = audio_file.read(frames=block_frames, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                frames_read += len(block)
                _check_length(frames_read, rate, max_seconds)
                mono_block, block_bad = _downmix(block)
                resampler.feed(mono_block)
                bad += block_bad
                total += block.size
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError, EOFError) as err:
        raise _SoundfileUnreadableError(str(err) or type(err).__name__) from err
    samples = resampler.finish()
    return _validated(samples, rate, kind, channels=channels, bad=bad, total=total)


def _check_rate(rate: int) -> None:
    """Refuse sample rates no microphone produces (and that would make resampling absurd)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"sample rate {rate} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")


def _check_length(frames: int, rate: int, max_seconds: float) -> None:
    """Refuse audio longer than `max_seconds`."""
    if frames > max_seconds * rate:
        raise AudioTooLargeError(f"audio is longer than the limit of {max_seconds:g} s")


def _downmix(frames: Array) -> tuple[Array, int]:
    """Average frames x channels into mono; returns it and how many values were not finite.

    Non-finite values become 0 first: left in, one NaN would spread through the mean and
    the resampling filter into every score after it. Whether there were too many of them
    is `_finish`'s call, once the whole clip is known.
    """
    finite = np.isfinite(frames)
    bad = frames.size - int(np.count_nonzero(finite))
    if bad:
        frames = np.where(finite, frames, np.float32(0.0))
    if frames.shape[1] == 1:
        return np.asarray(frames[:, 0], dtype=np.float32), bad
    # Downmix before resampling: one channel to filter instead of many, and the mean keeps
    # the level of correlated channels where a sum would clip.
    return frames.mean(axis=1, dtype=np.float32), bad


def _finish(
    mono: Samples,
    rate: int,
    kind: str,
    max_seconds: float,
    *,
    channels: int,
    bad: int,
    total: int,
) -> Decoded:
    """Validate downmixed audio and resample it to 16 kHz.

    `bad` of the `total` decoded values (all channels) were NaN or infinite and are now 0.
    """
    _check_length(len(mono), rate, max_seconds)
    samples = resample(mono, rate) if len(mono) else np.zeros(0, dtype=np.float32)
    return _validated(samples, rate, kind, channels=channels, bad=bad, total=total)


def _validated(
    samples: Samples, rate: int, kind: str, *, channels: int, bad: int, total: int
) -> Decoded:
    """The decoded clip, once its 16 kHz samples are known to be usable."""
    if total == 0 or len(samples) == 0:
        raise AudioError("audio is empty: it decoded to no samples")
    if bad == total:
        raise AudioError("audio contains no finite samples (all NaN or infinite)")
    if 2 * bad > total:
        # A few bad samples (a glitching float encoder) are dropped quietly; a clip that is
        # mostly garbage would only yield meaningless scores.
        raise AudioError(f"audio is mostly NaN or infinite ({100 * bad / total:.0f}% of samples)")
    # Float files may hold anything (1e30 gave a "770 dBFS" level): full scale is the limit of
    # what a microphone records, and of what the models were trained on.
    samples = np.clip(np.ascontiguousarray(samples, dtype=np.float32), -1.0, 1.0)
    return Decoded(
        samples=samples,
        source_rate=rate,
        source_channels=channels,
        duration=len(samples) / SAMPLE_RATE,
        format=kind,
    )


def resample(mono: Samples, rate: int, target: int = SAMPLE_RATE) -> Array:
    """Resample mono audio from `rate` to `target` with an anti-aliased polyphase filter.

    Naive decimation would fold everything above the new Nyquist frequency back into the
    band (a 12 kHz tone at 48 kHz would come out at 4 kHz); resample_poly low-pass filters
    first, with a Kaiser-windowed FIR, and keeps the signal time-aligned.
    """
    if rate == target:
        return mono.astype(np.float32, copy=False)
    up, down = _ratio(rate, target)
    return np.asarray(resample_poly(mono, up, down), dtype=np.float32)


def _ratio(rate: int, target: int) -> tuple[int, int]:
    divisor = math.gcd(rate, target)
    up, down = target // divisor, rate // divisor
    if down > _MAX_POLYPHASE_DOWN:
        ratio = Fraction(target, rate).limit_denominator(_MAX_POLYPHASE_DOWN)
        up, down = ratio.numerator, ratio.denominator
    return up, down


class StreamingResampler:
    """`resample`, block by block as audio decodes, with the very same output.

    Decoding a whole file at its own rate first would hold it all in float32: a 637 KB FLAC
    of one hour of silence at 384 kHz is 5.5 GB. Here only the 16 kHz output grows. Each
    block starts on a multiple of `down` input samples (so its output lands on the output
    grid) and is filtered with enough input on both sides to cover resample_poly's filter
    (10 * max(up, down) taps each side at the upsampled rate); the output kept from it is
    then exactly what one call over the whole signal gives.
    """

    def __init__(self, rate: int, target: int = SAMPLE_RATE, *, block: int = 1 << 20) -> None:
        """Resample from `rate` to `target`; about `block` input samples per filter call."""
        self.same = rate == target
        self.up, self.down = (1, 1) if self.same else _ratio(rate, target)
        half = 10 * max(self.up, self.down) // self.up + 2  # filter half-length, input samples
        self.context = -(-half // self.down) * self.down
        self.block = max(1, -(-block // self.down)) * self.down
        self._pending: Array = np.zeros(0, dtype=np.float32)  # input from `_start - context` on
        self._start = 0  # input index of the next output block
        self._offset = 0  # input index of _pending[0]
        self._seen = 0
        self._parts: list[Array] = []
        self.output = 0  # samples produced so far

    def feed(self, samples: Samples) -> None:
        """Take the next input samples; resample every whole block now covered."""
        samples = np.asarray(samples, dtype=np.float32)
        self._seen += samples.size
        if self.same:
            self._keep(samples)
            return
        self._pending = np.concatenate([self._pending, samples])
        while self._seen >= self._start + self.block + self.context:
            self._run(self._start + self.block)

    def finish(self) -> Array:
        """Resample what is left; the whole output."""
        if not self.same and self._start < self._seen:
            self._run(self._seen)
        out = np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.float32)
        self._parts = [out]
        return out

    def _run(self, end: int) -> None:
        first = max(0, self._start - self.context)
        last = min(self._seen, end + self.context)
        chunk = self._pending[first - self._offset : last - self._offset]
        filtered = resample_poly(chunk, self.up, self.down)
        skip = (self._start - first) * self.up // self.down
        if end == self._seen:  # the end: as many samples as one call over everything gives
            count = -(-self._seen * self.up // self.down) - self.output
        else:
            count = (end - self._start) * self.up // self.down
        self._keep(np.asarray(filtered[skip : skip + count], dtype=np.float32))
        self._start = end
        keep_from = max(0, self._start - self.context)
        self._pending = self._pending[keep_from - self._offset :]
        self._offset = keep_from

    def _keep(self, out: Array) -> None:
        self._parts.append(out)
        self.output += out.size


async def _decode_ffmpeg(
    data: bytes,
    kind: str,
    *,
    ffmpeg: str,
    timeout: float,  # noqa: ASYNC109 - bounds the subprocess
    max_seconds: float,
    soundfile_error: str | None,
) -> Decoded:
    """Decode anything ffmpeg understands; ffmpeg also downmixes and resamples."""
    temp_path: str | None = None
    if kind == "mp4":
        temp_path = await asyncio.to_thread(_write_temp, data)
        # A forced demuxer and file-only protocols: the data can only be read as MP4/MOV
        # (external data references are off by default in that demuxer).
        input_args = ["-protocol_whitelist", "file", "-f", "mov", "-i", temp_path]
    else:
        # Only the pipe protocol: an uploaded HLS or concat playlist must not make ffmpeg open
        # local files or URLs on the service's behalf.
        input_args = ["-protocol_whitelist", "pipe", "-i", "pipe:0"]
    args = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        *input_args,
        "-f",
        "f32le",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        # ffmpeg's own stereo-to-mono matrix is (L + R) / sqrt(2), 3 dB hotter than the mean
        # the other paths use, so the same sound would get a different level (and dBFS gate)
        # depending on its container. Capping the matrix's gain sum at 1 makes it the mean
        # for stereo, and a level-preserving downmix for surround layouts.
        "-rematrix_maxval",
        "1",
        # Stop decoding just past the allowance: a tiny compressed file can expand into hours
        # of float32 output, which must not all land in memory before being refused.
        "-t",
        f"{max_seconds + 1:.3f}",
        "pipe:1",
    ]
    try:
        try:
            # An argument list, never a shell: nothing in the upload reaches a command line.
            process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE if temp_path is None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
            prefix = f"could not decode audio ({soundfile_error}); " if soundfile_error else ""
            raise FFmpegNotFoundError(
                f"{prefix}ffmpeg is not installed (looked for {ffmpeg!r}), so only WAV, FLAC, "
                "OGG and raw L16 audio can be decoded"
            ) from err
        try:
            # communicate writes stdin while draining stdout and stderr, so neither side can
            # block on a full pipe buffer.
            async with asyncio.timeout(timeout):
                stdout, stderr = await process.communicate(None if temp_path else data)
        except TimeoutError:
            raise AudioError(
                f"could not decode audio: ffmpeg took longer than {timeout:g} s"
            ) from None
        finally:
            if process.returncode is None:
                # Timed out or cancelled: never leave a decoder running (or a zombie) behind.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
    finally:
        if temp_path is not None:
            await asyncio.to_thread(_remove, temp_path)

    if process.returncode != 0:
        summary = _summarise_stderr(stderr)
        if summary:
            raise AudioError(f"could not decode audio: ffmpeg says: {summary}")
        raise AudioError(f"could not decode audio: ffmpeg exited with status {process.returncode}")
    usable = len(stdout) - len(stdout) % 4
    mono = np.frombuffer(stdout[:usable], dtype="<f4")
    return await asyncio.to_thread(_finish_ffmpeg, mono, kind, max_seconds)


def _finish_ffmpeg(output: Samples, kind: str, max_seconds: float) -> Decoded:
    """Validate ffmpeg's 16 kHz mono output (runs in a worker thread)."""
    mono, bad = _downmix(output[:, np.newaxis])
    decoded = _finish(mono, SAMPLE_RATE, kind, max_seconds, channels=1, bad=bad, total=output.size)
    return Decoded(
        samples=decoded.samples,
        source_rate=0,
        source_channels=0,
        duration=decoded.duration,
        format=decoded.format,
    )


def _summarise_stderr(stderr: bytes) -> str:
    """Condense ffmpeg's error output into one short line for an API error."""
    lines: list[str] = []
    for raw in stderr.decode("utf-8", "replace").splitlines():
        line = _STDERR_ADDRESS.sub("", raw).strip()
        if line and not line.startswith("Last message repeated") and line not in lines:
            lines.append(line)
    # The last lines hold the verdict; earlier ones are usually per-packet noise.
    summary = "; ".join(lines[-3:])
    if len(summary) > _STDERR_LIMIT:
        summary = summary[: _STDERR_LIMIT - 1] + "…"
    return summary


def _write_temp(data: bytes) -> str:
    """Write data to a private temporary file and return its path."""
    fd, path = tempfile.mkstemp(prefix="midasheng-", suffix=".mp4")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        _remove(path)
        raise
    return path


def _remove(path: str) -> None:
    """Delete a temporary file, ignoring one that is already gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
