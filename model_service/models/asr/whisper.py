"""`WhisperRecognizer`: a Whisper checkpoint through transformers, batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
from typing import Any, cast

import numpy as np

from model_service.arrays import Samples
from model_service.models.asr.base import (
    SAMPLE_RATE,
    AsrInfo,
    AsrLoadError,
    Transcript,
    resolve_language,
)
from model_service.models.batcher import DynamicBatcher
from model_service.models.devices import torch_device, torch_dtype

_LOGGER = logging.getLogger(__name__)
# Whisper runs 30 s windows padded to full length, so a large batch is a lot of work on a
# CPU; the tagger's batch size (64 by default) is far too many for it.
WHISPER_MAX_BATCH = 16


@dataclass(frozen=True, slots=True)
class _WhisperItem:
    samples: Samples
    language: str | None


class WhisperRecognizer:
    """A transformers Whisper model (hub id or local folder), batched across requests."""

    def __init__(
        self,
        spec: str,
        *,
        device: str = "auto",
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
    ) -> None:
        """Load model and processor (blocking: call from a thread)."""
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.device = torch_device(device)
        dtype = torch_dtype(self.device)
        try:
            self.processor: Any = cast("Any", WhisperProcessor.from_pretrained(spec))
            model = WhisperForConditionalGeneration.from_pretrained(spec, dtype=dtype)
        except (OSError, ValueError) as err:
            raise AsrLoadError(f"cannot load Whisper model {spec!r}: {err}") from err
        self.model = model.to(self.device).eval()
        self.chunk_samples = int(self.processor.feature_extractor.n_samples)
        self.lang_to_id = self._language_tokens()
        self.id_to_lang = {i: code for code, i in self.lang_to_id.items()}
        languages = tuple(sorted(self.lang_to_id)) or ("en",)
        self.max_batch = max(1, min(max_batch, WHISPER_MAX_BATCH))
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self._batcher: DynamicBatcher[_WhisperItem, Transcript] | None = None
        self.info = AsrInfo(
            name=spec,
            backend="whisper",
            languages=languages,
            device=self.device,
            extra={"multilingual": bool(self.lang_to_id)},
        )

    def _language_tokens(self) -> dict[str, int]:
        """Language code -> token id, from the generation config or else the tokenizer.

        English-only checkpoints (".en") say `is_multilingual: false` and take no language
        token; they answer {} and get no language forcing.
        """
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        gen = self.model.generation_config
        if getattr(gen, "is_multilingual", True) is False:
            return {}
        lang_to_id = getattr(gen, "lang_to_id", None)
        if not lang_to_id:
            vocab = self.processor.tokenizer.get_vocab()
            lang_to_id = {f"<|{c}|>": vocab[f"<|{c}|>"] for c in LANGUAGES if f"<|{c}|>" in vocab}
            if not lang_to_id:
                return {}
            # Older checkpoints lack these; generate() needs them to force the language.
            gen.lang_to_id = lang_to_id
            gen.is_multilingual = True
            if not getattr(gen, "task_to_id", None):
                gen.task_to_id = {
                    t: vocab[f"<|{t}|>"] for t in ("transcribe", "translate") if f"<|{t}|>" in vocab
                }
        return {token[2:-2]: int(i) for token, i in lang_to_id.items()}

    async def start(self) -> None:
        """Start the batcher."""
        if self._batcher is None:
            self._batcher = DynamicBatcher(
                "asr",
                self._run_batch,
                max_batch=self.max_batch,
                max_wait_ms=self.max_wait_ms,
                max_queue=self.max_queue,
            )
            self._batcher.start()

    async def stop(self) -> None:
        """Stop the batcher; waiting requests fail."""
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            await batcher.stop()

    async def transcribe(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """Speech to text; no language means Whisper detects it. `phrases` are not used."""
        multilingual = bool(self.lang_to_id)
        lang = resolve_language(language, self.info.languages, None if multilingual else "en")
        audio = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        if audio.size == 0:
            return Transcript("", lang or self.info.languages[0])
        await self.start()
        assert self._batcher is not None
        # Whisper hears one window at a time: longer clips go as consecutive windows in one
        # submission (they batch with each other and with other requests).
        windows = [
            _WhisperItem(audio[i : i + self.chunk_samples], lang)
            for i in range(0, audio.size, self.chunk_samples)
        ]
        if lang is None and len(windows) > 1:
            # Detect once, on the first window, so one clip does not mix languages.
            first = await self._batcher.submit(windows[0])
            rest = await self._batcher.submit_many(
                [_WhisperItem(w.samples, first.language) for w in windows[1:]]
            )
            results = [first, *rest]
        else:
            results = await self._batcher.submit_many(windows)
        text = " ".join(r.text for r in results if r.text)
        return Transcript(text, results[0].language)

    def _run_batch(self, items: list[_WhisperItem]) -> list[Transcript]:
        """Transcribe a batch of windows (blocking; the batcher's worker thread)."""
        import torch

        features = self.processor.feature_extractor(
            [item.samples for item in items], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(self.device, dtype=self.model.dtype)
        with torch.inference_mode():
            if not self.lang_to_id:
                tokens = self.model.generate(features)
                languages = ["en"] * len(items)
            else:
                languages_or_none = [item.language for item in items]
                missing = [i for i, lang in enumerate(languages_or_none) if lang is None]
                if missing:
                    detected = self.model.detect_language(features[missing]).tolist()
                    for i, token_id in zip(missing, detected, strict=True):
                        languages_or_none[i] = self.id_to_lang.get(int(token_id), "en")
                languages = [lang or "en" for lang in languages_or_none]
                # One language per item: generate() puts each item's language token in its
                # decoder prompt, so a batch can mix languages.
                tokens = self.model.generate(features, language=languages, task="transcribe")
        texts = self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [Transcript(text.strip(), lang) for text, lang in zip(texts, languages, strict=True)]
