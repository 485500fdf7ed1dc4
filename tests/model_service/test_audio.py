"""Audio intake: every format decodes to the same 16 kHz mono signal, bad input to clear errors."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
from pathlib import Path
import shutil
import subprocess
import time
from unittest import mock
import wave

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from model_service import audio
from model_service.audio import (
    AudioError,
    AudioTooLargeError,
    FFmpegNotFoundError,
    decode,
    parse_l16,
    pcm16_to_float,
    read_limited,
    to_wav_bytes,
)

RATE = 16000
SOURCE_RATE = 44100
SECONDS = 2.0
# Left: 1 kHz at 0.5. Right: the same plus 3 kHz at 0.4. Their mean, the expected mono
# downmix, is 1 kHz at 0.5 plus 3 kHz at 0.2 (-8 dB).
TONE_1K = 0.5
TONE_3K = 0.2
EXPECTED_RMS = float(np.sqrt(TONE_1K**2 / 2 + TONE_3K**2 / 2))

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg binary is not installed")


def stereo_source(rate: int = SOURCE_RATE, seconds: float = SECONDS) -> np.ndarray:
    """The test signal as frames x 2 channels."""
    t = np.arange(round(rate * seconds)) / rate
    tone = TONE_1K * np.sin(2 * np.pi * 1000 * t)
    right = tone + 0.4 * np.sin(2 * np.pi * 3000 * t)
    return np.stack([tone, right], axis=1)


def expected_mono(count: int) -> np.ndarray:
    """The mean of both channels, sampled at 16 kHz."""
    t = np.arange(count) / RATE
    return TONE_1K * np.sin(2 * np.pi * 1000 * t) + TONE_3K * np.sin(2 * np.pi * 3000 * t)


def middle(samples: np.ndarray, edge: float = 0.1) -> np.ndarray:
    """Drop `edge` seconds at both ends, where filters and codecs ramp in and out."""
    cut = int(edge * RATE)
    return samples[cut : len(samples) - cut]


def tone_amplitude(samples: np.ndarray, freq: float, rate: int = RATE) -> float:
    """Amplitude of one sinusoid, by projection onto it under a Hann window."""
    x = middle(samples).astype(np.float64)
    window = np.hanning(len(x))
    phasor = np.exp(-2j * np.pi * freq * np.arange(len(x)) / rate)
    return float(2 * abs(np.sum(x * window * phasor)) / np.sum(window))


def peak_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    """Frequency of the strongest FFT bin."""
    x = middle(samples) * np.hanning(len(middle(samples)))
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate / len(x))


def rms(samples: np.ndarray) -> float:
    """Root mean square of the middle part."""
    return float(np.sqrt(np.mean(middle(samples).astype(np.float64) ** 2)))


def db(ratio: float) -> float:
    """Amplitude ratio in decibels."""
    return 20 * np.log10(max(ratio, 1e-12))


def write_sf(data: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """Encode with libsndfile into bytes."""
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def assert_is_the_test_signal(decoded: audio.Decoded, tolerance: float) -> None:
    """Lossless paths: sample for sample the expected 16 kHz mono signal."""
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.ndim == 1
    assert decoded.duration == pytest.approx(SECONDS, abs=2 / RATE)
    assert len(decoded.samples) == pytest.approx(SECONDS * RATE, abs=2)
    error = np.abs(middle(decoded.samples) - middle(expected_mono(len(decoded.samples))))
    assert error.max() < tolerance


def assert_sounds_like_the_test_signal(decoded: audio.Decoded, duration_tolerance: float) -> None:
    """Lossy paths: same duration, spectrum and level as the expected signal."""
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.ndim == 1
    assert np.isfinite(decoded.samples).all()
    assert decoded.duration == pytest.approx(SECONDS, abs=duration_tolerance)
    assert decoded.duration == len(decoded.samples) / RATE
    assert peak_frequency(decoded.samples) == pytest.approx(1000, abs=2)
    # The mean downmix: the 3 kHz tone that only one channel had arrives at half its level.
    assert tone_amplitude(decoded.samples, 1000) == pytest.approx(TONE_1K, rel=0.12)
    assert tone_amplitude(decoded.samples, 3000) == pytest.approx(TONE_3K, rel=0.15)
    assert rms(decoded.samples) == pytest.approx(EXPECTED_RMS, rel=0.1)
    # Nothing else: a frequency in between carries no energy.
    assert tone_amplitude(decoded.samples, 2000) < 0.01


def ffmpeg_encode(tmp_path: Path, source: bytes, name: str, *args: str) -> bytes:
    """Encode `source` (a WAV file) with the real ffmpeg binary."""
    assert FFMPEG is not None
    src = tmp_path / "source.wav"
    src.write_bytes(source)
    out = tmp_path / name
    result = subprocess.run(
        [
            FFMPEG,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            *args,
            str(out),
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"this ffmpeg cannot encode {name}: {result.stderr.decode()[-200:]}")
    return out.read_bytes()


@pytest.fixture(scope="module")
def source_wav() -> bytes:
    """The stereo test signal as a 16-bit WAV at 44.1 kHz."""
    return write_sf(stereo_source(), SOURCE_RATE, "WAV", "PCM_16")


# --- WAV, FLAC, OGG through libsndfile ------------------------------------------------------


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [
        ("PCM_U8", 0.02),  # 8-bit quantisation: a step of 1/128
        ("PCM_16", 2e-3),
        ("PCM_24", 2e-3),
        ("PCM_32", 2e-3),
        ("FLOAT", 2e-3),
        ("DOUBLE", 2e-3),
    ],
)
async def test_wav_every_sample_format(subtype: str, tolerance: float) -> None:
    """Integer, unsigned and float WAVs all become the same 16 kHz mono signal."""
    data = write_sf(stereo_source(), SOURCE_RATE, "WAV", subtype)
    decoded = await decode(data, "audio/wav")
    assert decoded.format == "wav"
    assert decoded.source_rate == SOURCE_RATE
    assert decoded.source_channels == 2
    assert_is_the_test_signal(decoded, tolerance)


async def test_wav_extensible() -> None:
    """WAVE_FORMAT_EXTENSIBLE headers (what many recorders write) decode the same."""
    data = write_sf(stereo_source(), SOURCE_RATE, "WAVEX", "PCM_24")
    assert data[20:22] == b"\xfe\xff"  # the format tag of WAVE_FORMAT_EXTENSIBLE
    decoded = await decode(data, None)
    assert decoded.format == "wav"
    assert decoded.source_channels == 2
    assert_is_the_test_signal(decoded, 2e-3)


async def test_content_type_is_only_a_hint() -> None:
    """Files are recognised by their bytes: a FLAC sent as octet-stream still decodes."""
    data = write_sf(stereo_source(), SOURCE_RATE, "FLAC", "PCM_16")
    decoded = await decode(data, "application/octet-stream")
    assert decoded.format == "flac"
    assert decoded.source_rate == SOURCE_RATE
    assert_is_the_test_signal(decoded, 2e-3)


async def test_flac() -> None:
    """FLAC is lossless: sample for sample the reference."""
    decoded = await decode(write_sf(stereo_source(), SOURCE_RATE, "FLAC", "PCM_24"), None)
    assert (decoded.format, decoded.source_rate, decoded.source_channels) == ("flac", 44100, 2)
    assert_is_the_test_signal(decoded, 2e-3)


async def test_ogg_vorbis() -> None:
    """OGG Vorbis decodes in process, with its own sample rate reported."""
    decoded = await decode(write_sf(stereo_source(), SOURCE_RATE, "OGG", "VORBIS"), "audio/ogg")
    assert (decoded.format, decoded.source_rate, decoded.source_channels) == ("ogg", 44100, 2)
    assert_sounds_like_the_test_signal(decoded, 0.01)


async def test_ogg_opus_through_libsndfile() -> None:
    """OGG Opus (decoded at 48 kHz by the codec) is resampled like anything else."""
    decoded = await decode(write_sf(stereo_source(48000), 48000, "OGG", "OPUS"), None)
    assert (decoded.format, decoded.source_rate, decoded.source_channels) == ("ogg", 48000, 2)
    assert_sounds_like_the_test_signal(decoded, 0.01)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 48000, 96000])
async def test_wav_sample_rates(rate: int) -> None:
    """Up- and downsampling from common rates keeps time and tone."""
    decoded = await decode(write_sf(stereo_source(rate), rate, "WAV", "FLOAT"), None)
    assert decoded.source_rate == rate
    assert_is_the_test_signal(decoded, 2e-3)


# --- everything else through ffmpeg ---------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize(
    ("name", "args", "fmt", "duration_tolerance"),
    [
        ("clip.mp3", ["-c:a", "libmp3lame", "-b:a", "128k"], "mp3", 0.03),
        ("clip.m4a", ["-c:a", "aac", "-b:a", "128k"], "mp4", 0.03),
        # Raw ADTS carries no edit list, so the encoder's priming samples stay in.
        ("clip.aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"], "aac", 0.06),
        ("clip.webm", ["-c:a", "libopus", "-b:a", "96k"], "matroska", 0.03),
        ("clip.mka", ["-c:a", "pcm_s16le"], "matroska", 1 / RATE),
    ],
)
async def test_ffmpeg_formats(
    tmp_path: Path,
    source_wav: bytes,
    name: str,
    args: list[str],
    fmt: str,
    duration_tolerance: float,
) -> None:
    """MP3, AAC (MP4 and ADTS), Opus in WebM and PCM in Matroska decode through ffmpeg."""
    data = ffmpeg_encode(tmp_path, source_wav, name, *args)
    decoded = await decode(data, None)
    assert decoded.format == fmt
    # ffmpeg resamples and downmixes itself; it is run quietly, so the source is unknown.
    assert (decoded.source_rate, decoded.source_channels) == (0, 0)
    assert_sounds_like_the_test_signal(decoded, duration_tolerance)


@needs_ffmpeg
async def test_ffmpeg_lossless_matches_the_other_paths(tmp_path: Path, source_wav: bytes) -> None:
    """PCM in Matroska through ffmpeg is sample for sample what the WAV path gives.

    ffmpeg's own downmix is (L + R) / sqrt(2); the same clip must not come out 3 dB louder
    just because it arrived in another container.
    """
    data = ffmpeg_encode(tmp_path, source_wav, "clip.mka", "-c:a", "pcm_s16le")
    via_ffmpeg = await decode(data, None)
    via_libsndfile = await decode(source_wav, None)
    assert_is_the_test_signal(via_ffmpeg, 2e-3)
    assert len(via_ffmpeg.samples) == len(via_libsndfile.samples)
    diff = middle(via_ffmpeg.samples) - middle(via_libsndfile.samples)
    assert np.abs(diff).max() < 2e-3


@needs_ffmpeg
async def test_mp4_with_index_at_the_end(tmp_path: Path) -> None:
    """An M4A whose index follows the audio decodes even when it is too big for ffmpeg's pipe.

    ffmpeg cannot seek back in a pipe; fed such a file on stdin it fails with "partial file"
    once the audio data outgrows its read buffer (about 5 s of AAC here).
    """
    source = write_sf(stereo_source(seconds=8.0), SOURCE_RATE, "WAV", "PCM_16")
    data = ffmpeg_encode(tmp_path, source, "long.m4a", "-c:a", "aac", "-b:a", "128k")
    assert data.find(b"moov") > data.find(b"mdat") > 0
    decoded = await decode(data, "audio/mp4")
    assert decoded.format == "mp4"
    assert decoded.duration == pytest.approx(8.0, abs=0.03)
    assert peak_frequency(decoded.samples) == pytest.approx(1000, abs=2)


@needs_ffmpeg
async def test_ffmpeg_playlists_cannot_reach_files(tmp_path: Path) -> None:
    """An uploaded HLS playlist must not make ffmpeg read local files."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(write_sf(stereo_source(), SOURCE_RATE, "WAV", "PCM_16"))
    playlist = (
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://{secret}\n#EXT-X-ENDLIST\n"
    ).encode()
    with pytest.raises(AudioError, match="could not decode audio"):
        await decode(playlist, "application/vnd.apple.mpegurl")


# --- anti-aliasing --------------------------------------------------------------------------


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    """A sine wave."""
    return amplitude * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)


def test_naive_decimation_would_alias() -> None:
    """The failure the resampler prevents: 12 kHz at 48 kHz, every third sample, is 4 kHz."""
    naive = tone(12000, 48000)[::3]
    assert tone_amplitude(naive, 4000) == pytest.approx(0.5, rel=0.01)


async def test_resampling_is_anti_aliased_wav() -> None:
    """A 12 kHz tone at 48 kHz is removed (< -40 dB), not folded to 4 kHz."""
    source = tone(12000, 48000)
    decoded = await decode(write_sf(source, 48000, "WAV", "FLOAT"), None)
    assert db(rms(decoded.samples) / rms(source)) < -40
    assert db(tone_amplitude(decoded.samples, 4000) / 0.5) < -40


async def test_resampling_is_anti_aliased_l16() -> None:
    """The raw PCM path shares the anti-aliased resampler."""
    pcm = np.round(tone(12000, 48000) * 32767).astype(">i2").tobytes()
    decoded = await decode(pcm, "audio/L16;rate=48000;channels=1")
    assert db(rms(decoded.samples) / (0.5 / np.sqrt(2))) < -40
    assert db(tone_amplitude(decoded.samples, 4000) / 0.5) < -40


@needs_ffmpeg
async def test_resampling_is_anti_aliased_ffmpeg(tmp_path: Path) -> None:
    """ffmpeg's resampler holds to the same bar."""
    source = write_sf(tone(12000, 48000), 48000, "WAV", "PCM_16")
    data = ffmpeg_encode(tmp_path, source, "tone.mka", "-c:a", "pcm_s16le")
    decoded = await decode(data, None)
    assert db(rms(decoded.samples) / (0.5 / np.sqrt(2))) < -40


async def test_passband_is_kept() -> None:
    """Tones below the new Nyquist frequency keep their level through the filter."""
    source = tone(4000, 48000) + tone(7000, 48000, amplitude=0.3)
    decoded = await decode(write_sf(source, 48000, "WAV", "FLOAT"), None)
    assert tone_amplitude(decoded.samples, 4000) == pytest.approx(0.5, rel=0.01)
    assert tone_amplitude(decoded.samples, 7000) == pytest.approx(0.3, rel=0.05)


# --- raw PCM (L16) --------------------------------------------------------------------------


def pcm_signal(rate: int, channels: int, seconds: float = 1.0) -> np.ndarray:
    """1 kHz at 0.6 in every channel, 2.5 kHz at 0.3 in the second only (frames x channels)."""
    t = np.arange(round(rate * seconds)) / rate
    frames = np.repeat((0.6 * np.sin(2 * np.pi * 1000 * t))[:, None], channels, axis=1)
    if channels > 1:
        frames[:, 1] += 0.3 * np.sin(2 * np.pi * 2500 * t)
    return frames


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize(
    ("content_type", "dtype", "fmt"),
    [
        ("audio/L16;rate={rate};channels={channels}", ">i2", "l16"),
        ("audio/L16; rate={rate}; channels={channels}; endianness=little-endian", "<i2", "s16le"),
        ("audio/s16le;rate={rate};channels={channels}", "<i2", "s16le"),
    ],
    ids=["l16-big-endian", "l16-little-endian", "s16le"],
)
async def test_l16(rate: int, channels: int, content_type: str, dtype: str, fmt: str) -> None:
    """Raw PCM at any rate, channel count and byte order becomes the same mono signal."""
    frames = pcm_signal(rate, channels)
    data = np.round(frames * 32767).astype(dtype).tobytes()
    decoded = await decode(data, content_type.format(rate=rate, channels=channels))
    assert decoded.format == fmt
    assert (decoded.source_rate, decoded.source_channels) == (rate, channels)
    assert decoded.duration == pytest.approx(1.0, abs=1 / RATE)
    t = np.arange(len(decoded.samples)) / RATE
    expected = 0.6 * np.sin(2 * np.pi * 1000 * t)
    if channels > 1:
        expected += 0.3 / channels * np.sin(2 * np.pi * 2500 * t)
    assert np.abs(middle(decoded.samples) - middle(expected)).max() < 2e-3
    assert peak_frequency(decoded.samples) == pytest.approx(1000, abs=2)


@pytest.mark.parametrize("rate", [44101, 383999])
async def test_l16_awkward_rate_is_fast_and_accurate(rate: int) -> None:
    """A rate with no small ratio to 16 kHz neither stalls nor drifts measurably."""
    data = np.round(pcm_signal(rate, 1, seconds=5.0) * 32767).astype(">i2").tobytes()
    started = time.perf_counter()
    decoded = await decode(data, f"audio/L16;rate={rate}")
    assert time.perf_counter() - started < 5
    assert decoded.duration == pytest.approx(5.0, abs=2 / RATE)
    assert tone_amplitude(decoded.samples, 1000) == pytest.approx(0.6, rel=0.01)
    # Timing drift: the phase of the 1 kHz tone in the last 0.5 s against where it should be.
    start = len(decoded.samples) - RATE
    t = np.arange(start, start + RATE // 2) / RATE
    phasor = np.exp(-2j * np.pi * 1000 * t)
    got = np.sum(decoded.samples[start : start + RATE // 2] * phasor)
    want = np.sum(0.6 * np.sin(2 * np.pi * 1000 * t) * phasor)
    drift = np.angle(got / want) / (2 * np.pi * 1000)
    assert abs(drift) < 5e-5  # 50 us after 4.5 s: 11 ppm


async def test_l16_defaults_to_mono() -> None:
    """RFC 2586: channels defaults to 1."""
    data = np.round(pcm_signal(16000, 1) * 32767).astype(">i2").tobytes()
    decoded = await decode(data, "audio/L16;rate=16000")
    assert decoded.source_channels == 1
    assert decoded.duration == pytest.approx(1.0)


async def test_l16_wins_over_sniffing() -> None:
    """Raw PCM that happens to start with "RIFF" is still raw PCM."""
    data = b"RIFF" + bytes(1596)
    decoded = await decode(data, "audio/L16;rate=16000;channels=1")
    assert decoded.format == "l16"
    assert decoded.duration == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (b"\x00\x01\x02", "audio/L16;rate=16000;channels=1", "odd number of bytes"),
        (bytes(6), "audio/L16;rate=16000;channels=2", "not a whole number of frames"),
        (bytes(10), "audio/s16le;rate=16000;channels=4", "not a whole number of frames"),
        (bytes(4), "audio/L16;rate=5;channels=1", "outside the supported"),
        (bytes(4), "audio/L16;rate=999;channels=1", "outside the supported"),
        (bytes(4), "audio/L16;rate=384001;channels=1", "outside the supported"),
        (bytes(4), "audio/L16;rate=1000000000;channels=1", "outside the supported"),
        (bytes(4), "audio/L16;rate=0", "outside the supported"),
        (bytes(4), "audio/L16;rate=-16000", "outside the supported"),
        (bytes(4), "audio/L16;rate=16k", "whole number"),
        (bytes(4), "audio/L16;rate=16000.5", "whole number"),
        (bytes(4), "audio/L16;channels=1", "needs a rate"),
        (bytes(4), "audio/L16;rate=16000;channels=0", "channel count"),
        (bytes(4), "audio/L16;rate=16000;channels=65", "channel count"),
        (bytes(4), "audio/L16;rate=16000;endianness=middle", "endianness"),
        (bytes(4), "audio/s16le;rate=16000;endianness=big-endian", "little-endian"),
        (bytes(4), "audio/L16;rate", "malformed"),
    ],
)
async def test_l16_bad_input(data: bytes, content_type: str, message: str) -> None:
    """Malformed raw PCM and its parameters are refused with a reason."""
    with pytest.raises(AudioError, match=message):
        await decode(data, content_type)


def test_parse_l16() -> None:
    """Content types are case-insensitive and tolerate spaces and quotes."""
    assert parse_l16("audio/L16;rate=16000;channels=1") == (16000, 1, True)
    assert parse_l16("AUDIO/l16 ; Rate=44100 ; CHANNELS=2") == (44100, 2, True)
    assert parse_l16('audio/L16;rate="8000";channels="1"') == (8000, 1, True)
    assert parse_l16("audio/L16;rate=48000;endianness=little-endian") == (48000, 1, False)
    assert parse_l16("audio/L16;rate=48000;endianness=big-endian") == (48000, 1, True)
    assert parse_l16("audio/s16le;rate=16000") == (16000, 1, False)
    assert parse_l16("audio/L16;rate=16000;foo=bar") == (16000, 1, True)
    for other in (None, "", "audio/wav", "audio/L24;rate=16000", "application/octet-stream"):
        assert parse_l16(other) is None


def test_pcm16_to_float() -> None:
    """The full int16 range maps onto [-1, 1) in either byte order."""
    little = np.array([-32768, -16384, 0, 16384, 32767], dtype="<i2").tobytes()
    expected = np.array([-1.0, -0.5, 0.0, 0.5, 32767 / 32768], dtype=np.float32)
    result = pcm16_to_float(little)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)
    big = np.array([-32768, -16384, 0, 16384, 32767], dtype=">i2").tobytes()
    np.testing.assert_array_equal(pcm16_to_float(big, big_endian=True), expected)
    assert pcm16_to_float(b"").size == 0
    with pytest.raises(AudioError, match="odd number of bytes"):
        pcm16_to_float(b"\x00\x00\x00")


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "audio/wav", "audio/L16;rate=16000"])
async def test_empty_body(content_type: str | None) -> None:
    """No bytes at all is refused before anything runs."""
    with pytest.raises(AudioError, match="audio is empty"):
        await decode(b"", content_type)


async def test_wav_without_frames() -> None:
    """A valid header with no samples is empty audio."""
    data = write_sf(np.zeros((0, 2)), 44100, "WAV", "PCM_16")
    with pytest.raises(AudioError, match="audio is empty"):
        await decode(data, None)


@needs_ffmpeg
async def test_random_bytes() -> None:
    """Noise that is no format at all gets ffmpeg's verdict, summarised."""
    data = np.random.default_rng(0).bytes(4096)
    with pytest.raises(AudioError, match="could not decode audio: ffmpeg says") as info:
        await decode(data, "application/octet-stream")
    message = str(info.value)
    assert len(message) < 500
    assert " @ 0x" not in message  # no pointer addresses from ffmpeg's log prefixes


@needs_ffmpeg
async def test_text_is_not_audio() -> None:
    """A text upload is refused, not decoded as something."""
    with pytest.raises(AudioError, match="could not decode audio"):
        await decode(b"hello, this is not audio at all\n" * 20, "text/plain")


@needs_ffmpeg
@pytest.mark.parametrize("length", [4, 12, 30, 40])
async def test_truncated_wav_header(source_wav: bytes, length: int) -> None:
    """A WAV cut inside its header is refused by libsndfile and then by ffmpeg."""
    with pytest.raises(AudioError, match="could not decode audio"):
        await decode(source_wav[:length], "audio/wav")


async def test_wav_header_without_data(source_wav: bytes) -> None:
    """A complete header followed by nothing is empty audio."""
    with pytest.raises(AudioError, match="audio is empty"):
        await decode(source_wav[:44], "audio/wav")


async def test_truncated_wav_data_keeps_what_is_there(source_wav: bytes) -> None:
    """A WAV cut inside its data decodes the part that arrived."""
    half = 44 + (len(source_wav) - 44) // 2
    decoded = await decode(source_wav[: half - 1], None)
    assert decoded.duration == pytest.approx(SECONDS / 2, abs=0.01)
    assert peak_frequency(decoded.samples) == pytest.approx(1000, abs=2)


async def test_all_nan_wav() -> None:
    """A float WAV full of NaN has nothing to listen to."""
    data = write_sf(np.full((16000, 2), np.nan), 16000, "WAV", "FLOAT")
    with pytest.raises(AudioError, match="no finite samples"):
        await decode(data, None)


async def test_mostly_infinite_wav() -> None:
    """A clip that is mostly inf is refused too."""
    source = stereo_source()
    source[: int(len(source) * 0.7)] = np.inf
    data = write_sf(source, SOURCE_RATE, "WAV", "DOUBLE")
    with pytest.raises(AudioError, match="mostly NaN or infinite"):
        await decode(data, None)


async def test_a_few_nan_samples_become_silence() -> None:
    """Scattered NaN/inf samples are zeroed instead of spreading through the filter."""
    source = stereo_source()
    rng = np.random.default_rng(1)
    bad = rng.choice(source.size, size=source.size // 100, replace=False)
    source.flat[bad[::2]] = np.nan
    source.flat[bad[1::2]] = -np.inf
    decoded = await decode(write_sf(source, SOURCE_RATE, "WAV", "FLOAT"), None)
    assert np.isfinite(decoded.samples).all()
    assert peak_frequency(decoded.samples) == pytest.approx(1000, abs=2)
    assert rms(decoded.samples) == pytest.approx(EXPECTED_RMS, rel=0.05)


async def test_one_dead_nan_channel() -> None:
    """A stereo file with one NaN channel keeps the other (at half level, like silence)."""
    source = stereo_source()
    source[:, 1] = np.nan
    decoded = await decode(write_sf(source, SOURCE_RATE, "WAV", "FLOAT"), None)
    assert tone_amplitude(decoded.samples, 1000) == pytest.approx(TONE_1K / 2, rel=0.01)


async def test_unsupported_wav_rate() -> None:
    """A WAV header with an absurd rate is refused, not resampled from 1 Hz."""
    data = write_sf(np.zeros(100), 500, "WAV", "PCM_16")
    with pytest.raises(AudioError, match="outside the supported"):
        await decode(data, None)


# --- duration limit -------------------------------------------------------------------------


async def test_too_long_l16() -> None:
    """Raw PCM past max_seconds is refused before conversion."""
    data = bytes(2 * 16000 * 3)
    with pytest.raises(AudioTooLargeError, match="longer than the limit of 2 s"):
        await decode(data, "audio/L16;rate=16000", max_seconds=2)
    decoded = await decode(data, "audio/L16;rate=16000", max_seconds=3)
    assert decoded.duration == 3.0


async def test_too_long_wav(source_wav: bytes) -> None:
    """A 2 s WAV is refused under a 1.5 s limit."""
    with pytest.raises(AudioTooLargeError, match="longer than the limit"):
        await decode(source_wav, None, max_seconds=1.5)


def flac_of_unknown_length() -> bytes:
    """The test signal as a FLAC whose header does not give its length, as streamers write."""
    patched = bytearray(write_sf(stereo_source(), SOURCE_RATE, "FLAC", "PCM_16"))
    # STREAMINFO's 36-bit total-sample count (low nibble of byte 21, bytes 22-25): 0 = unknown.
    patched[21] &= 0xF0
    patched[22:26] = bytes(4)
    return bytes(patched)


async def test_flac_of_unknown_length() -> None:
    """A header without a length is no reason to refuse (or to believe it endless)."""
    decoded = await decode(flac_of_unknown_length(), None, max_seconds=2.5)
    assert_is_the_test_signal(decoded, 2e-3)


async def test_too_long_flac_of_unknown_length() -> None:
    """The limit holds on what decodes, whatever the header says."""
    with pytest.raises(AudioTooLargeError):
        await decode(flac_of_unknown_length(), None, max_seconds=1.0)


@needs_ffmpeg
async def test_too_long_ffmpeg(tmp_path: Path, source_wav: bytes) -> None:
    """ffmpeg output past the limit is refused (and ffmpeg stops decoding soon after it)."""
    data = ffmpeg_encode(tmp_path, source_wav, "clip.mp3", "-c:a", "libmp3lame")
    with pytest.raises(AudioTooLargeError, match="longer than the limit"):
        await decode(data, None, max_seconds=0.5)


# --- ffmpeg failures ------------------------------------------------------------------------


@needs_ffmpeg
async def test_ffmpeg_timeout(tmp_path: Path, source_wav: bytes) -> None:
    """A tiny timeout stops the real ffmpeg and says so."""
    data = ffmpeg_encode(tmp_path, source_wav, "clip.mp3", "-c:a", "libmp3lame")
    with pytest.raises(AudioError, match=r"ffmpeg took longer than 0\.001 s"):
        await decode(data, None, timeout=0.001)


async def test_hung_ffmpeg_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoder that never finishes is killed at the timeout, not waited for."""
    pid_file = tmp_path / "pid"
    fake = tmp_path / "fake-ffmpeg"
    fake.write_text('#!/bin/sh\necho $$ > "$FAKE_FFMPEG_PID"\nexec sleep 60\n')
    fake.chmod(0o755)
    monkeypatch.setenv("FAKE_FFMPEG_PID", str(pid_file))
    started = time.monotonic()
    with pytest.raises(AudioError, match="took longer than 1 s"):
        await decode(b"ID3 not really an mp3" * 10, None, ffmpeg=str(fake), timeout=1.0)
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped: no zombie left behind


async def test_failing_ffmpeg_without_stderr(tmp_path: Path) -> None:
    """A decoder that fails silently still yields a clear message."""
    fake = tmp_path / "fake-ffmpeg"
    fake.write_text("#!/bin/sh\ncat > /dev/null\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(AudioError, match="ffmpeg exited with status 3"):
        await decode(b"\xff\xfb" + bytes(500), None, ffmpeg=str(fake))


async def test_missing_ffmpeg(source_wav: bytes) -> None:
    """Without ffmpeg, compressed formats say why; WAV needs no ffmpeg at all."""
    with pytest.raises(FFmpegNotFoundError, match="ffmpeg is not installed") as info:
        await decode(b"ID3" + bytes(1000), None, ffmpeg="midasheng-no-such-ffmpeg")
    assert isinstance(info.value, AudioError)
    assert "midasheng-no-such-ffmpeg" in str(info.value)
    decoded = await decode(source_wav, None, ffmpeg="midasheng-no-such-ffmpeg")
    assert decoded.format == "wav"


async def test_missing_ffmpeg_after_libsndfile_failed(source_wav: bytes) -> None:
    """When libsndfile refused a WAV and ffmpeg is missing, both reasons are given."""
    with pytest.raises(FFmpegNotFoundError, match=r"could not decode audio \(.+\); ffmpeg"):
        await decode(source_wav[:30], None, ffmpeg="midasheng-no-such-ffmpeg")


async def test_large_input_does_not_deadlock_the_pipes(tmp_path: Path) -> None:
    """Megabytes in and out at once: stdin is fed while stdout is drained."""
    fake = tmp_path / "fake-ffmpeg"
    # Echo stdin to stdout as it arrives: with sequential write-then-read both pipes fill.
    fake.write_text("#!/bin/sh\nexec cat\n")
    fake.chmod(0o755)
    samples = np.tile(np.array([0.25, -0.25], dtype=np.float32), 2_000_000)
    data = b"\xff\xfb" + samples.tobytes()[2:]
    decoded = await asyncio.wait_for(decode(data, None, ffmpeg=str(fake), timeout=20), 30)
    assert decoded.duration == pytest.approx(4_000_000 / RATE)


# --- read_limited ---------------------------------------------------------------------------


def stream_reader() -> aiohttp.StreamReader:
    """A StreamReader fed by the test instead of a socket."""
    protocol = mock.Mock(_reading_paused=False)
    return aiohttp.StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())


async def test_read_limited_within_the_limit() -> None:
    """Exactly `limit` bytes are fine."""
    stream = stream_reader()
    payload = os.urandom(200_000)
    stream.feed_data(payload)
    stream.feed_eof()
    assert await read_limited(stream, 200_000) == payload


async def test_read_limited_empty() -> None:
    """An empty body reads as empty bytes."""
    stream = stream_reader()
    stream.feed_eof()
    assert await read_limited(stream, 10) == b""


async def test_read_limited_raises_without_waiting_for_the_end() -> None:
    """One byte past the limit is enough; the rest of the body is never awaited."""
    stream = stream_reader()
    stream.feed_data(bytes(1001))  # and no EOF: a client still sending
    with pytest.raises(AudioTooLargeError, match="over the limit of 1000 bytes"):
        await asyncio.wait_for(read_limited(stream, 1000), 2)


async def test_read_limited_stops_reading_an_oversized_body() -> None:
    """A 10 MiB body against a 1 MiB limit: reading stops right after the limit."""
    stream = stream_reader()
    total = 10 * 1024 * 1024
    limit = 1024 * 1024
    for _ in range(total // 65536):
        stream.feed_data(bytes(65536))
    stream.feed_eof()
    with pytest.raises(AudioTooLargeError, match=r"1 MiB"):
        await read_limited(stream, limit)
    left = len(await stream.read())
    assert left >= total - limit - 65536


async def test_read_limited_with_a_slow_client() -> None:
    """Chunks trickling in are collected until EOF."""
    stream = stream_reader()

    async def client() -> None:
        for i in range(20):
            stream.feed_data(bytes([i]) * 1000)
            await asyncio.sleep(0)
        stream.feed_eof()

    task = asyncio.create_task(client())
    data = await read_limited(stream, 20_000)
    await task
    assert data == b"".join(bytes([i]) * 1000 for i in range(20))


async def test_read_limited_zero_limit() -> None:
    """A zero limit accepts only an empty body."""
    stream = stream_reader()
    stream.feed_data(b"x")
    with pytest.raises(AudioTooLargeError):
        await read_limited(stream, 0)


# --- to_wav_bytes and Decoded ---------------------------------------------------------------


def test_to_wav_bytes_round_trip() -> None:
    """A clip written as WAV reads back as 16-bit mono at its rate."""
    samples = tone(1000, RATE).astype(np.float32)
    data = to_wav_bytes(samples)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        assert wav.getnframes() == len(samples)
    back, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == RATE
    np.testing.assert_allclose(back, samples, atol=1 / 32767)


def test_to_wav_bytes_clips_safely() -> None:
    """Out-of-range values clip instead of wrapping around; NaN becomes silence."""
    samples = np.array([2.0, -2.0, 1e30, -np.inf, np.inf, np.nan, 0.5, -1.0], dtype=np.float32)
    data = to_wav_bytes(samples, rate=8000)
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == 8000
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert pcm.tolist() == [32767, -32767, 32767, -32767, 32767, 0, 16384, -32767]


def test_to_wav_bytes_shapes() -> None:
    """Frames x channels is written as multichannel; other shapes and rates are refused."""
    stereo = np.zeros((100, 2), dtype=np.float32)
    with wave.open(io.BytesIO(to_wav_bytes(stereo))) as wav:
        assert (wav.getnchannels(), wav.getnframes()) == (2, 100)
    with pytest.raises(ValueError, match="shape"):
        to_wav_bytes(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="rate"):
        to_wav_bytes(np.zeros(10), rate=0)


async def test_clip_decodes_back() -> None:
    """Event clips served as WAV are valid uploads again."""
    samples = (0.5 * expected_mono(RATE)).astype(np.float32)
    decoded = await decode(to_wav_bytes(samples), "audio/wav")
    assert decoded.source_rate == RATE
    np.testing.assert_allclose(decoded.samples, samples, atol=1 / 32767)


async def test_decoded_is_frozen(source_wav: bytes) -> None:
    """A Decoded cannot be rebound by one consumer under another's feet."""
    decoded = await decode(source_wav, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.format = "mp3"  # type: ignore[misc]


def test_error_hierarchy() -> None:
    """Handlers can catch AudioError (400) and single out AudioTooLargeError (413)."""
    assert issubclass(AudioError, ValueError)
    assert issubclass(AudioTooLargeError, AudioError)
    assert issubclass(FFmpegNotFoundError, AudioError)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000, 383999, 384000])
def test_streaming_resampler_matches_one_call(rate: int) -> None:
    """Block by block, in pieces of any size, the output is `resample`'s over the whole."""
    from model_service.audio.decoding import StreamingResampler, resample

    rng = np.random.default_rng(rate)
    for n in (1, 1000, 123_457):
        x = rng.standard_normal(n).astype(np.float32)
        expected = resample(x, rate)
        for block, piece in ((4096, 777), (50, 13), (1 << 20, 100_000)):
            resampler = StreamingResampler(rate, block=block)
            for start in range(0, n, piece):
                resampler.feed(x[start : start + piece])
            out = resampler.finish()
            assert out.shape == expected.shape, (n, block)
            np.testing.assert_allclose(out, expected, atol=1e-5)


async def test_float_audio_beyond_full_scale_is_clipped() -> None:
    """A float WAV of 1e30 decodes to full scale, so no level reads above 0 dBFS."""
    buffer = io.BytesIO()
    sf.write(buffer, np.full(RATE, 1e30, dtype=np.float32), RATE, format="WAV", subtype="FLOAT")
    decoded = await decode(buffer.getvalue(), "audio/wav")
    assert float(np.max(np.abs(decoded.samples))) == 1.0
