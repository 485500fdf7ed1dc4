"""Audio in: decoding uploads and streams to 16 kHz mono float32, and WAV out."""

from model_service.audio.decoding import (
    DEFAULT_MAX_SECONDS,
    SAMPLE_RATE,
    AudioError,
    AudioTooLargeError,
    Decoded,
    FFmpegNotFoundError,
    decode,
    parse_l16,
    pcm16_to_float,
    read_limited,
    resample,
    to_wav_bytes,
)

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "SAMPLE_RATE",
    "AudioError",
    "AudioTooLargeError",
    "Decoded",
    "FFmpegNotFoundError",
    "decode",
    "parse_l16",
    "pcm16_to_float",
    "read_limited",
    "resample",
    "to_wav_bytes",
]
