"""Choosing and loading the speech recognizer the configuration names."""

from __future__ import annotations

import logging

from model_service.models.asr.base import AsrLoadError, SpeechRecognizer
from model_service.models.asr.fallback import FallbackRecognizer
from model_service.models.asr.lm_asr import LMRecognizer
from model_service.models.asr.openai_asr import OpenAITranscriptionRecognizer, openai_asr_url
from model_service.models.asr.sphinx import PocketsphinxRecognizer
from model_service.models.asr.whisper import WhisperRecognizer
from model_service.models.lm import AudioLM

_LOGGER = logging.getLogger(__name__)


def asr_backend(spec: str | None) -> str | None:
    """Which backend a `--asr` value selects: "pocketsphinx", "lm", "openai", "whisper" or None."""
    if spec is None:
        return None
    value = spec.strip()
    if value.lower() in ("", "none", "off"):
        return None
    if value.lower() in ("pocketsphinx", "builtin"):
        return "pocketsphinx"
    if value.lower() == "lm":
        return "lm"
    if value.lower().startswith("openai:"):
        return "openai"
    return "whisper"


def load_asr(
    spec: str | None,
    *,
    device: str = "auto",
    lm: AudioLM | None = None,
    max_batch: int = 8,
    max_wait_ms: float = 5.0,
    max_queue: int = 256,
    fallback: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
) -> SpeechRecognizer | None:
    """Load the recognizer `--asr` names (blocking: call from a thread); None for "none".

    `fallback` (`--asr-fallback`: "lm", "openai:<base url>" or a Whisper id) names an
    open-vocabulary recognizer for what pocketsphinx's phrase grammar rejects; only
    pocketsphinx takes one. `model` and `api_key` are for an OpenAI-compatible server.
    """
    backend = asr_backend(spec)
    if asr_backend(fallback) is not None:
        if backend != "pocketsphinx":
            raise AsrLoadError(
                "--asr-fallback backs the pocketsphinx phrase grammar; "
                f"--asr {spec or 'none'} has no grammar to fall back from"
            )
        if asr_backend(fallback) == "pocketsphinx":
            raise AsrLoadError(
                '--asr-fallback must be open-vocabulary: "lm", "openai:<base url>" or a Whisper id'
            )
        grammar = PocketsphinxRecognizer(max_queue=max_queue)
        open_vocabulary = load_asr(
            fallback,
            device=device,
            lm=lm,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            model=model,
            api_key=api_key,
        )
        assert open_vocabulary is not None
        return FallbackRecognizer(grammar, open_vocabulary)
    if backend is None:
        return None
    if backend == "pocketsphinx":
        return PocketsphinxRecognizer(max_queue=max_queue)
    if backend == "lm":
        if lm is None:
            raise AsrLoadError("--asr lm needs an audio LM: start the service with --lm as well")
        return LMRecognizer(lm)
    if backend == "openai":
        url = openai_asr_url(spec)
        assert url is not None
        return OpenAITranscriptionRecognizer(url, model=model, api_key=api_key, max_queue=max_queue)
    assert spec is not None
    return WhisperRecognizer(
        spec.strip(),
        device=device,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
    )
