"""Model families: how each wants its prompts and inputs, and which one a model or a served
model card is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import logging
from typing import TYPE_CHECKING, Any

from model_service.models.lm.base import SAMPLE_RATE, TASK_ASK, TASK_CAPTION, TASK_TRANSCRIBE

if TYPE_CHECKING:
    pass

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Family:
    """How one model family wants its prompts and its inputs."""

    name: str
    system_prompt: str | None
    caption_prompt: str
    asr_prompt: str
    asr_language_prompt: str
    audio_first: bool
    # Extra keyword arguments of the processor call (besides text, audio, padding).
    processor_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # "AutoModelForCausalLM" (remote code), or "architecture": the transformers class the
    # config's `architectures` names.
    model_class: str = "architecture"
    remote_code: bool = False
    # How an OpenAI-compatible server wants the audio: "input_audio" (OpenAI's shape, vLLM)
    # or "audio_url" with a data URL (vLLM-Omni's MiMo-Audio examples).
    audio_part: str = "input_audio"
    # `modalities` for chat requests that want text: an omni server (vLLM-Omni) otherwise
    # answers with every output its stages make, speech included. None: not sent.
    text_modalities: tuple[str, ...] | None = None
    # Whether the model generates speech (text to speech through its audio output).
    speaks: bool = False
    # ASR prompts for particular languages (MiMo-Audio is prompted in the language itself).
    asr_prompts: Mapping[str, str] = field(default_factory=dict)

    def prompt(self, task: str, text: str | None = None) -> str:
        """The user-turn text for a task."""
        if task == TASK_CAPTION:
            return self.caption_prompt
        if task == TASK_TRANSCRIBE:
            if text:
                # "en-US" / "en_US" -> "en": the models' language tags are ISO 639-1 codes.
                code = text.replace("_", "-").split("-")[0].strip().lower()
                if code in self.asr_prompts:
                    return self.asr_prompts[code]
                return self.asr_language_prompt.format(language=code)
            return self.asr_prompt
        if task == TASK_ASK:
            if not text:
                raise ValueError("a question is needed")
            return text
        raise ValueError(f"unknown task {task!r}")

    def conversation(self, prompt: str) -> list[dict[str, Any]]:
        """Chat messages for the processor's chat template (the audio itself goes separately).

        The audio part only tells the template where the audio placeholder goes; the
        samples are handed to the processor call, which expands the placeholder.
        """
        audio_part: dict[str, Any] = {"type": "audio", "audio": "clip"}
        text_part: dict[str, Any] = {"type": "text", "text": prompt}
        content = [audio_part, text_part] if self.audio_first else [text_part, audio_part]
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append(
                {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]}
            )
        messages.append({"role": "user", "content": content})
        return messages

    def openai_audio(self, wav_base64: str) -> dict[str, Any]:
        """A WAV clip as a chat-completions content part, in the shape the server takes."""
        if self.audio_part == "audio_url":
            return {
                "type": "audio_url",
                "audio_url": {"url": f"data:audio/wav;base64,{wav_base64}"},
            }
        return {"type": "input_audio", "input_audio": {"data": wav_base64, "format": "wav"}}

    def openai_messages(self, prompt: str, wav_base64: str) -> list[dict[str, Any]]:
        """The same conversation in OpenAI chat-completions form."""
        audio_part = self.openai_audio(wav_base64)
        text_part = {"type": "text", "text": prompt}
        content = [audio_part, text_part] if self.audio_first else [text_part, audio_part]
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": content})
        return messages


MIDASHENGLM = Family(
    name="midashenglm",
    system_prompt="You are a helpful language and speech assistant.",
    caption_prompt="Caption the audio.",
    # The model's evaluation prompts: the language goes in as a <|xx|> tag.
    asr_prompt="Transcribe the speech into text",
    asr_language_prompt="Transcribe the speech into text <|{language}|>",
    audio_first=False,
    model_class="AutoModelForCausalLM",
    remote_code=True,
)
QWEN2_AUDIO = Family(
    name="qwen2_audio",
    system_prompt=None,  # its chat template adds "You are a helpful assistant."
    caption_prompt="What can you hear? Describe the audio in one sentence.",
    asr_prompt="Transcribe the speech in this audio into text.",
    asr_language_prompt="Transcribe the speech in this audio into text. Language: {language}.",
    audio_first=True,
    processor_kwargs={"sampling_rate": SAMPLE_RATE},
)
# Xiaomi's MiMo-Audio-7B-Instruct, served by vLLM-Omni with its own chat template. Prompts
# are those of its task examples (vLLM-Omni's examples/offline_inference/mimo_audio): the
# audio first, then the instruction; ASR in the speech's own language.
MIMO_AUDIO = Family(
    name="mimo_audio",
    system_prompt=None,  # its chat template adds "You are a helpful assistant."
    caption_prompt="Describe the sounds in this audio in one sentence.",
    asr_prompt="Please transcribe this audio file",
    asr_language_prompt="Please transcribe this audio file",
    asr_prompts={"zh": "请将这段语音转换为文字"},
    audio_first=True,
    audio_part="audio_url",
    text_modalities=("text",),
    speaks=True,
)
GENERIC = Family(
    name="generic",
    system_prompt=None,
    caption_prompt=QWEN2_AUDIO.caption_prompt,
    asr_prompt=QWEN2_AUDIO.asr_prompt,
    asr_language_prompt=QWEN2_AUDIO.asr_language_prompt,
    audio_first=True,
    processor_kwargs={"sampling_rate": SAMPLE_RATE},
)


FAMILIES: Mapping[str, Family] = {
    f.name: f for f in (MIDASHENGLM, QWEN2_AUDIO, MIMO_AUDIO, GENERIC)
}


def select_family(
    model_type: str | None,
    architectures: Sequence[str] | None = None,
    auto_map: Mapping[str, Any] | None = None,
) -> Family:
    """The family of a model, from its config's `model_type`, `architectures` and `auto_map`."""
    names = [model_type or "", *(architectures or ()), *map(str, (auto_map or {}).values())]
    lowered = [n.lower() for n in names]
    if any("midasheng" in n for n in lowered):
        return MIDASHENGLM
    if model_type == "qwen2_audio" or "Qwen2AudioForConditionalGeneration" in (architectures or ()):
        return QWEN2_AUDIO
    return GENERIC


def family_for_served_model(card: Mapping[str, Any]) -> Family:
    """The family of a model an OpenAI-compatible server lists in `/v1/models`.

    vLLM lists the name it serves under as `id` (any name: `--served-model-name default`)
    and the model it loaded as `root`, so `root` says what the model is.
    """
    for key in ("root", "id"):
        family = family_for_model_name(str(card.get(key) or ""))
        if family is not GENERIC:
            return family
    return GENERIC


def family_for_model_name(name: str | None) -> Family:
    """The family behind a served model name (OpenAI-compatible servers name their model)."""
    lowered = (name or "").lower()
    if "midasheng" in lowered:
        return MIDASHENGLM
    if "mimo-audio" in lowered or "mimo_audio" in lowered:
        return MIMO_AUDIO
    if "qwen2-audio" in lowered or "qwen2_audio" in lowered:
        return QWEN2_AUDIO
    return GENERIC


def _decoder_type(config: Any) -> str | None:
    """The decoder a MiDashengLM config names (qwen2 for 7B, qwen3 for 0.6B), if any."""
    text = getattr(config, "text_config", None)
    if isinstance(text, Mapping):
        return text.get("model_type")
    return getattr(text, "model_type", None)
