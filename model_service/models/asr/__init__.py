"""Speech recognition backends: pocketsphinx (embedded default), Whisper, the audio LM, or an
OpenAI-compatible transcription server.

Every backend takes float32 mono 16 kHz samples and answers a `Transcript`. Selection
(`asr_backend`) takes plain arguments so it is testable without the heavy packages;
pocketsphinx, torch and transformers are imported only by the backend that needs them.
"""

from model_service.models.asr.base import (
    MAX_PHRASES,
    SAMPLE_RATE,
    AsrInfo,
    AsrLoadError,
    SpeechRecognizer,
    Transcript,
    UnsupportedLanguageError,
    resolve_language,
)
from model_service.models.asr.fallback import FallbackRecognizer
from model_service.models.asr.grammar import (
    PhraseGrammar,
    compile_phrases,
    normalize_phrase,
    number_words,
)
from model_service.models.asr.lm_asr import LMRecognizer
from model_service.models.asr.loading import asr_backend, load_asr
from model_service.models.asr.openai_asr import (
    OpenAITranscriptionRecognizer,
    TranscriptionError,
    openai_asr_url,
)
from model_service.models.asr.sphinx import PocketsphinxRecognizer
from model_service.models.asr.whisper import WhisperRecognizer

__all__ = [
    "MAX_PHRASES",
    "SAMPLE_RATE",
    "AsrInfo",
    "AsrLoadError",
    "FallbackRecognizer",
    "LMRecognizer",
    "OpenAITranscriptionRecognizer",
    "PhraseGrammar",
    "PocketsphinxRecognizer",
    "SpeechRecognizer",
    "Transcript",
    "TranscriptionError",
    "UnsupportedLanguageError",
    "WhisperRecognizer",
    "asr_backend",
    "compile_phrases",
    "load_asr",
    "normalize_phrase",
    "number_words",
    "openai_asr_url",
    "resolve_language",
]
