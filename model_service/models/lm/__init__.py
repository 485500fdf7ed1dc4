"""Audio language models: captions, questions about audio and speech recognition.

Two backends answer the same three requests (`describe`, `ask`, `transcribe`):

- `TransformersAudioLM` runs a model in process. Concurrent requests from every client are
  gathered by one `DynamicBatcher` and generated together (left padding, attention masks),
  in a worker thread under `torch.inference_mode()`.
- `OpenAIAudioLM` sends each request to an OpenAI-compatible `/chat/completions` endpoint with
  the clip as an `input_audio` part (base64 WAV), as vLLM's server accepts. vLLM serves
  MiDashengLM natively with continuous batching, which is how large deployments spread the
  load over GPUs and machines.

Model families differ only in prompts and in how a batch becomes model inputs; a `Family`
holds that difference and `select_family` picks one from a model's config (plain arguments,
testable without loading anything):

- MiDashengLM (remote code: `AutoModelForCausalLM` + `AutoProcessor` with
  `trust_remote_code`): system prompt "You are a helpful language and speech assistant.",
  text before audio in the user turn, prompts from the model's card and evaluation set
  ("Caption the audio.", "Transcribe the speech into text <|en|>"); its processor returns
  `input_values` + `audio_length` and left-pads the text. Its code targets transformers 4.x
  (>= 4.52 per its repository; 5.x breaks it), hence the pin in requirements/service.txt.
- Qwen2-Audio (transformers-native `Qwen2AudioForConditionalGeneration`): audio before
  text, Whisper features at 16 kHz passed with `sampling_rate`.
- Other transformers-native audio LMs get Qwen2-Audio's conventions on a best-effort basis.
"""

from model_service.models.lm.base import (
    MAX_AUDIO_SECONDS,
    MAX_QUESTION_CHARS,
    AudioLM,
    LMError,
    LMInfo,
    LMLoadError,
    LMRequest,
    LMTimeoutError,
    parse_lm_spec,
    strip_thinking,
)
from model_service.models.lm.families import (
    GENERIC,
    MIDASHENGLM,
    QWEN2_AUDIO,
    Family,
    family_for_model_name,
    family_for_served_model,
    select_family,
)
from model_service.models.lm.in_process import TransformersAudioLM
from model_service.models.lm.loading import lm_from_config, load_lm
from model_service.models.lm.remote import OpenAIAudioLM

__all__ = [
    "GENERIC",
    "MAX_AUDIO_SECONDS",
    "MAX_QUESTION_CHARS",
    "MIDASHENGLM",
    "QWEN2_AUDIO",
    "AudioLM",
    "Family",
    "LMError",
    "LMInfo",
    "LMLoadError",
    "LMRequest",
    "LMTimeoutError",
    "OpenAIAudioLM",
    "TransformersAudioLM",
    "family_for_model_name",
    "family_for_served_model",
    "lm_from_config",
    "load_lm",
    "parse_lm_spec",
    "select_family",
    "strip_thinking",
]
