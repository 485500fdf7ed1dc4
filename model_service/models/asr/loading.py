"""Choosing and loading the speech recognizer the configuration names."""

from __future__ import annotations

import logging

from model_service.models.asr.base import AsrLoadError, SpeechRecognizer
from model_service.models.asr.lm_asr import LMRecognizer
from model_service.models.asr.sphinx import PocketsphinxRecognizer
from model_service.models.asr.whisper import WhisperRecognizer
from model_service.models.lm import AudioLM

_LOGGER = logging.getLogger(__name__)


def asr_backend(spec: str | None) -> str | None:
    """Which backend a `--asr` value selects: "pocketsphinx", "lm", "whisper" or None."""
    if spec is None:
        return None
    value = spec.strip()
    if value.lower() in ("", "none", "off"):
        return None
    if value.lower() in ("pocketsphinx", "builtin"):
        return "pocketsphinx"
    if value.lower() == "lm":
        return "lm"
    return "whisper"


def load_asr(
    spec: str | None,
    *,
    device: str = "auto",
    lm: AudioLM | None = None,
    max_batch: int = 8,
    max_wait_ms: float = 5.0,
    max_queue: int = 256,
) -> SpeechRecognizer | None:
    """Load the recognizer `--asr` names (blocking: call from a thread); None for "none"."""
    backend = asr_backend(spec)
    if backend is None:
        return None
    if backend == "pocketsphinx":
        return PocketsphinxRecognizer(max_queue=max_queue)
    if backend == "lm":
        if lm is None:
            raise AsrLoadError("--asr lm needs an audio LM: start the service with --lm as well")
        return LMRecognizer(lm)
    assert spec is not None
    return WhisperRecognizer(
        spec.strip(),
        device=device,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
    )
