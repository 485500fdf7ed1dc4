"""Loading the audio LM the configuration names."""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any

from model_service.config import Config
from model_service.models.lm.base import AudioLM, parse_lm_spec
from model_service.models.lm.in_process import TransformersAudioLM
from model_service.models.lm.remote import OpenAIAudioLM

_LOGGER = logging.getLogger(__name__)


def load_lm(
    spec: str,
    *,
    device: str = "auto",
    trust_remote_code: bool = False,
    model: str | None = None,
    family: str | None = None,
    api_key: str | None = None,
    max_new_tokens: int = 128,
    timeout: float = 120.0,
    max_batch: int = 16,
    max_wait_ms: float = 5.0,
    max_queue: int = 1024,
    generation: Mapping[str, Any] | None = None,
) -> AudioLM:
    """Load the audio LM named by `spec`: a hub id / local folder, or openai:<base URL>."""
    backend, target = parse_lm_spec(spec)
    if backend == "openai":
        return OpenAIAudioLM(
            target,
            model=model,
            family=family,
            api_key=api_key,
            max_new_tokens=max_new_tokens,
            timeout=timeout,
            max_concurrency=max_batch,
            max_queue=max_queue,
            generation=generation,
        )
    return TransformersAudioLM(
        target,
        device=device,
        trust_remote_code=trust_remote_code,
        max_new_tokens=max_new_tokens,
        timeout=timeout,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        generation=generation,
    )


def lm_from_config(config: Config) -> AudioLM | None:
    """The audio LM the configuration asks for, or None (blocking: call from a thread)."""
    if not config.lm:
        return None
    return load_lm(
        config.lm,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        model=config.lm_model,
        family=config.lm_family,
        api_key=config.lm_api_key,
        max_new_tokens=config.lm_max_new_tokens,
        timeout=config.lm_timeout,
        max_batch=config.max_batch,
        max_wait_ms=config.max_wait_ms,
        max_queue=config.max_queue,
        generation=config.lm_generation,
    )
