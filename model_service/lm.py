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

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import logging
from pathlib import Path
import re
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import numpy as np

from .audio import AudioError, to_wav_bytes
from .batcher import DynamicBatcher, QueueFullError
from .devices import DeviceError, torch_device, torch_dtype

if TYPE_CHECKING:
    from .config import Config

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_AUDIO_SECONDS = 30.0
"""Longest clip an audio LM is given: MiDashengLM's evaluation clips and Qwen2-Audio's
Whisper encoder both top out at 30 s."""

MAX_QUESTION_CHARS = 2000

TASK_CAPTION = "caption"
TASK_ASK = "ask"
TASK_TRANSCRIBE = "transcribe"


class LMError(RuntimeError):
    """Generation failed; `status` is the HTTP status the API answers with."""

    status = 502


class LMTimeoutError(LMError):
    """The model (or the LM server) did not answer within the request timeout."""

    status = 504


class LMLoadError(RuntimeError):
    """An audio LM could not be loaded; the message names the problem."""


@dataclass(frozen=True, slots=True)
class LMRequest:
    """One request: 16 kHz mono samples, the task and its text (question or language)."""

    audio: np.ndarray
    task: str
    text: str | None = None


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

    def prompt(self, task: str, text: str | None = None) -> str:
        """The user-turn text for a task."""
        if task == TASK_CAPTION:
            return self.caption_prompt
        if task == TASK_TRANSCRIBE:
            if text:
                # "en-US" / "en_US" -> "en": the models' language tags are ISO 639-1 codes.
                code = text.replace("_", "-").split("-")[0].strip().lower()
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

    def openai_messages(self, prompt: str, wav_base64: str) -> list[dict[str, Any]]:
        """The same conversation in OpenAI chat-completions form, audio as `input_audio`."""
        audio_part = {"type": "input_audio", "input_audio": {"data": wav_base64, "format": "wav"}}
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

GENERIC = Family(
    name="generic",
    system_prompt=None,
    caption_prompt=QWEN2_AUDIO.caption_prompt,
    asr_prompt=QWEN2_AUDIO.asr_prompt,
    asr_language_prompt=QWEN2_AUDIO.asr_language_prompt,
    audio_first=True,
    processor_kwargs={"sampling_rate": SAMPLE_RATE},
)

FAMILIES: Mapping[str, Family] = {f.name: f for f in (MIDASHENGLM, QWEN2_AUDIO, GENERIC)}


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
    if "qwen2-audio" in lowered or "qwen2_audio" in lowered:
        return QWEN2_AUDIO
    return GENERIC


def parse_lm_spec(spec: str) -> tuple[str, str]:
    """Split `--lm` into (backend, target): ("openai", base URL) or ("transformers", id/folder)."""
    if spec.startswith("openai:"):
        url = spec.removeprefix("openai:").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise LMLoadError(
                f"--lm {spec}: expected openai:<base URL>, e.g. openai:http://127.0.0.1:8000/v1"
            )
        return "openai", url
    return "transformers", spec


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def strip_thinking(text: str) -> str:
    """An answer without its reasoning: Qwen3 decoders (MiDashengLM-0.6B) may think aloud.

    Whole `<think>...</think>` sections go; so does a section the token limit cut off
    (`<think>` with no end), and the reasoning before a lone `</think>` (a chat template
    that opens the section itself).
    """
    text = _THINK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text.strip()


def check_audio(samples: np.ndarray) -> np.ndarray:
    """Validate a clip for an audio LM: non-empty, at most `MAX_AUDIO_SECONDS`, finite."""
    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise AudioError("audio is empty")
    if audio.size > MAX_AUDIO_SECONDS * SAMPLE_RATE:
        raise AudioError(
            f"audio for the language model may be at most {MAX_AUDIO_SECONDS:g} s long, "
            f"not {audio.size / SAMPLE_RATE:.1f} s"
        )
    return np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)


@dataclass(frozen=True, kw_only=True)
class LMInfo:
    """What a loaded audio LM is, for `/v1/info`."""

    name: str
    backend: str
    family: str
    device: str | None = None
    max_new_tokens: int = 128
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Wire form for `/v1/info`."""
        return {
            "name": self.name,
            "backend": self.backend,
            "family": self.family,
            "device": self.device,
            "max_new_tokens": self.max_new_tokens,
            **self.extra,
        }


class AudioLM(Protocol):
    """An audio LM backend as the service uses it."""

    info: LMInfo

    async def start(self) -> None:
        """Start batchers / sessions (the model is already loaded)."""

    async def stop(self) -> None:
        """Stop and release resources."""

    async def verify(self) -> None:
        """Prove before `Ready` that the model answers audio; raise LMLoadError if not."""

    async def describe(self, samples: np.ndarray) -> str:
        """A caption of the clip."""
        ...

    async def ask(self, samples: np.ndarray, question: str) -> str:
        """An answer to a question about the clip."""
        ...

    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> str:
        """The speech in the clip as text, with the model's ASR prompt."""
        ...


class _AudioLMBase:
    """describe / ask / transcribe on top of one `_generate(LMRequest)`."""

    info: LMInfo
    timeout: float

    async def _generate(self, request: LMRequest) -> str:
        raise NotImplementedError

    async def verify(self) -> None:
        """Nothing to prove beyond loading (an in-process model ran a probe at load)."""

    async def describe(self, samples: np.ndarray) -> str:
        """A caption of the clip."""
        return await self._generate(LMRequest(check_audio(samples), TASK_CAPTION))

    async def ask(self, samples: np.ndarray, question: str) -> str:
        """An answer to a question about the clip."""
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        return await self._generate(LMRequest(check_audio(samples), TASK_ASK, question))

    async def transcribe(self, samples: np.ndarray, language: str | None = None) -> str:
        """The speech in the clip as text, with the model's ASR prompt.

        `language` is an ISO 639-1 code or a BCP 47 tag ("en", "en-US"); None lets the
        model decide.
        """
        return await self._generate(LMRequest(check_audio(samples), TASK_TRANSCRIBE, language))


def _decoder_type(config: Any) -> str | None:
    """The decoder a MiDashengLM config names (qwen2 for 7B, qwen3 for 0.6B), if any."""
    text = getattr(config, "text_config", None)
    if isinstance(text, Mapping):
        return text.get("model_type")
    return getattr(text, "model_type", None)


def _strip_prompt(sequences: Any, input_ids: Any) -> Any:
    """Generated tokens only.

    Most models return prompt + new tokens; models that generate from `inputs_embeds`
    (MiDashengLM's decoder) return only the new tokens, so strip only what matches.
    """
    import torch

    length = input_ids.shape[1]
    if sequences.shape[1] >= length and torch.equal(sequences[:, :length], input_ids):
        return sequences[:, length:]
    return sequences


class TransformersAudioLM(_AudioLMBase):
    """An audio LM run in process with batched generation."""

    def __init__(
        self,
        spec: str,
        *,
        device: str = "auto",
        trust_remote_code: bool = False,
        max_new_tokens: int = 128,
        timeout: float = 120.0,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        generation: Mapping[str, Any] | None = None,
    ) -> None:
        """Load the model, processor and tokenizer; raise LMLoadError naming the problem.

        Generation follows the checkpoint's own `generation_config.json` (where a model card's
        recommended settings live, e.g. sampling for MiDashengLM-0.6B); `generation`
        overrides single settings (`temperature`, `top_p`, `do_sample`, ...).
        """
        import torch

        self._torch = torch
        self.spec = spec
        self.max_new_tokens = max_new_tokens
        self.generation = dict(generation or {})
        self.timeout = timeout
        try:
            self.device = torch_device(device)
        except DeviceError as err:
            raise LMLoadError(str(err)) from err
        config = self._load_config(spec, trust_remote_code)
        self.family = select_family(
            getattr(config, "model_type", None),
            getattr(config, "architectures", None),
            getattr(config, "auto_map", None),
        )
        if self.family.remote_code and not trust_remote_code:
            raise LMLoadError(
                f"{spec} is a {self.family.name} model, which runs its own code; start with "
                "--trust-remote-code if you trust it"
            )
        self.processor, self.tokenizer = self._load_processor(spec, trust_remote_code)
        self.dtype = torch_dtype(self.device)
        self.model = self._load_model(spec, config, trust_remote_code)
        self._check_runs()
        self.batcher: DynamicBatcher[LMRequest, str] = DynamicBatcher(
            "lm",
            self.generate_batch,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
        )
        self.info = LMInfo(
            name=spec,
            backend="transformers",
            family=self.family.name,
            device=self.device,
            max_new_tokens=max_new_tokens,
            extra={
                "model_type": getattr(config, "model_type", None),
                "dtype": str(self.dtype).removeprefix("torch."),
            },
        )
        if self.family is MIDASHENGLM:
            self.info.extra["decoder"] = _decoder_type(config)
        if self.generation:
            self.info.extra["generation"] = self.generation
        _LOGGER.info(
            "Audio LM %s (%s) on %s, %s",
            spec,
            self.family.name,
            self.device,
            self.info.extra["dtype"],
        )

    @staticmethod
    def _load_config(spec: str, trust_remote_code: bool) -> Any:
        from transformers import AutoConfig

        if spec.startswith(("/", "./", "../", "~")) or Path(spec).expanduser().exists():
            folder = Path(spec).expanduser()
            if not folder.is_dir():
                raise LMLoadError(f"model folder {spec} does not exist")
            if not (folder / "config.json").is_file():
                raise LMLoadError(
                    f"{spec} is not a transformers model folder: it has no config.json"
                )
        try:
            return AutoConfig.from_pretrained(spec, trust_remote_code=trust_remote_code)
        except ValueError as err:
            if "trust_remote_code" in str(err):
                raise LMLoadError(
                    f"{spec} runs its own model code; start with --trust-remote-code if you trust it"
                ) from err
            raise LMLoadError(f"cannot read the config of {spec}: {err}") from err
        except Exception as err:
            raise LMLoadError(f"cannot load {spec}: {err}") from err

    @staticmethod
    def _load_processor(spec: str, trust_remote_code: bool) -> tuple[Any, Any]:
        from transformers import AutoProcessor, AutoTokenizer

        try:
            processor = AutoProcessor.from_pretrained(spec, trust_remote_code=trust_remote_code)
        except Exception as err:
            raise LMLoadError(f"cannot load the processor of {spec}: {err}") from err
        if getattr(processor, "feature_extractor", None) is None:
            raise LMLoadError(
                f"{spec} has no audio LM processor (an audio feature extractor with a "
                "tokenizer); is it an audio language model?"
            )
        # The model cards decode with the tokenizer; the processor normally carries it.
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(spec, trust_remote_code=trust_remote_code)
            except Exception as err:
                raise LMLoadError(f"cannot load the tokenizer of {spec}: {err}") from err
        if not (
            getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
        ):
            raise LMLoadError(f"{spec} has no chat template, so prompts cannot be built")
        # Decoder-only generation continues from the last position: padding goes left.
        tokenizer.padding_side = "left"
        return processor, tokenizer

    def _load_model(self, spec: str, config: Any, trust_remote_code: bool) -> Any:
        import transformers

        try:
            if self.family.model_class == "AutoModelForCausalLM":
                auto_class: Any = transformers.AutoModelForCausalLM
                model = auto_class.from_pretrained(
                    spec, trust_remote_code=trust_remote_code, dtype=self.dtype
                )
            else:
                architectures = getattr(config, "architectures", None) or []
                cls = next(
                    (getattr(transformers, a) for a in architectures if hasattr(transformers, a)),
                    None,
                )
                if cls is None or not hasattr(cls, "generate"):
                    raise LMLoadError(
                        f"{spec} ({', '.join(architectures) or 'no architecture'}) is not an "
                        "audio LM that transformers can run"
                    )
                model = cls.from_pretrained(spec, dtype=self.dtype)
        except LMLoadError:
            raise
        except Exception as err:
            raise LMLoadError(f"cannot load the model weights of {spec}: {err}") from err
        return model.to(self.device).eval()

    def _check_runs(self) -> None:
        """Generate one token for one silent second; on half-precision trouble use fp32."""
        probe = [LMRequest(np.zeros(SAMPLE_RATE, dtype=np.float32), TASK_CAPTION)]
        try:
            self._generate_now(probe, max_new_tokens=1)
        except Exception as err:
            if self.dtype == self._torch.float32:
                raise LMLoadError(f"{self.spec} does not run: {err}") from err
            _LOGGER.warning("%s does not run in %s (%s); using float32", self.spec, self.dtype, err)
            self.dtype = self._torch.float32
            self.model = self.model.float()
            try:
                self._generate_now(probe, max_new_tokens=1)
            except Exception as err2:
                raise LMLoadError(f"{self.spec} does not run: {err2}") from err2

    def prepare(self, requests: Sequence[LMRequest]) -> dict[str, Any]:
        """Model inputs for a batch: chat template, processor (audio + left-padded text)."""
        prompts = [self.family.prompt(r.task, r.text) for r in requests]
        conversations = [self.family.conversation(p) for p in prompts]
        texts = self.processor.apply_chat_template(
            conversations, tokenize=False, add_generation_prompt=True
        )
        inputs = self.processor(
            text=list(texts),
            audio=[r.audio for r in requests],
            padding=True,
            return_tensors="pt",
            **self.family.processor_kwargs,
        )
        # Fast tokenizers return token_type_ids that no causal LM's generate accepts.
        inputs.pop("token_type_ids", None)
        return dict(inputs)

    def _generate_now(self, requests: Sequence[LMRequest], *, max_new_tokens: int) -> list[str]:
        torch = self._torch
        inputs = {
            key: (
                value.to(self.device, self.dtype)
                if value.is_floating_point()
                else value.to(self.device)
            )
            for key, value in self.prepare(requests).items()
        }
        kwargs: dict[str, Any] = {
            **self.generation,
            "max_new_tokens": max_new_tokens,
            "max_time": self.timeout,
        }
        if getattr(self.model.generation_config, "pad_token_id", None) is None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **kwargs)
        new_tokens = _strip_prompt(sequences, inputs["input_ids"])
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [strip_thinking(text) for text in texts]

    def generate_batch(self, requests: list[LMRequest]) -> list[str]:
        """Generate answers for a batch of requests together (blocking; worker thread).

        A batch that does not fit in GPU memory (long clips, a small GPU) is split in halves
        and retried, so `--max-batch` is a ceiling rather than a promise the GPU must keep.
        """
        try:
            return self._generate_now(requests, max_new_tokens=self.max_new_tokens)
        except self._torch.cuda.OutOfMemoryError:
            if len(requests) == 1:
                raise
            self._torch.cuda.empty_cache()
            half = len(requests) // 2
            _LOGGER.warning("Out of GPU memory for a batch of %d; splitting it", len(requests))
            return self.generate_batch(requests[:half]) + self.generate_batch(requests[half:])

    async def start(self) -> None:
        """Start the batcher."""
        self.batcher.start()

    async def stop(self) -> None:
        """Stop the batcher and drop the model."""
        await self.batcher.stop()
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    async def _generate(self, request: LMRequest) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.batcher.submit(request)
        except TimeoutError as err:
            raise LMTimeoutError(f"the audio LM did not answer within {self.timeout:g} s") from err


class OpenAIAudioLM(_AudioLMBase):
    """An audio LM behind an OpenAI-compatible chat-completions endpoint (e.g. vLLM)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        family: str | None = None,
        api_key: str | None = None,
        max_new_tokens: int = 128,
        timeout: float = 120.0,
        max_concurrency: int = 64,
        max_queue: int = 1024,
        generation: Mapping[str, Any] | None = None,
    ) -> None:
        """Remember where the server is; `verify` contacts it before the service is ready.

        `generation` settings (`temperature`, `top_p`, ...) go into every request body; the
        server's defaults (vLLM: the model's generation config) apply otherwise.
        """
        self.base_url = base_url.rstrip("/")
        self.generation = dict(generation or {})
        self.model = model
        if family is not None and family not in FAMILIES:
            raise LMLoadError(f"unknown LM family {family!r}: use one of {', '.join(FAMILIES)}")
        self._family_override = FAMILIES[family] if family else None
        self._api_key = api_key
        self.max_new_tokens = max_new_tokens
        self.timeout = timeout
        self.max_queue = max_queue
        # The server batches (vLLM: continuous batching); here only the number of requests
        # in flight is bounded, and the wait behind them, like the in-process batcher.
        self._slots = asyncio.Semaphore(max_concurrency)
        self._waiting = 0
        self._session: aiohttp.ClientSession | None = None
        self._model_lock = asyncio.Lock()
        self.family = self._family_override or family_for_model_name(model)
        self.info = self._make_info()

    def _make_info(self) -> LMInfo:
        return LMInfo(
            name=self.model or self.base_url,
            backend="openai",
            family=self.family.name,
            max_new_tokens=self.max_new_tokens,
            extra={"url": self.base_url},
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def start(self) -> None:
        """Open the HTTP session."""
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _model_name(self, session: aiohttp.ClientSession) -> str:
        """`--lm-model`, or the first model the server lists (vLLM serves one)."""
        async with self._model_lock:
            if self.model is None:
                await self._read_models(session)
            assert self.model is not None
            return self.model

    async def _read_models(self, session: aiohttp.ClientSession) -> None:
        """Pick the served model and its prompt family from `/models`."""
        data = await self._request(session, "GET", "/models")
        cards = data.get("data") if isinstance(data, dict) else None
        if not isinstance(cards, list) or not cards:
            raise LMError(f"the LM server at {self.base_url} lists no model; set --lm-model")
        card = next(
            (c for c in cards if isinstance(c, dict) and c.get("id") == self.model),
            cards[0] if self.model is None else None,
        )
        if card is None:
            names = ", ".join(str(c.get("id")) for c in cards if isinstance(c, dict))
            raise LMError(f"the LM server at {self.base_url} serves {names}, not {self.model}")
        self.model = str(card["id"])
        self.family = self._family_override or family_for_served_model(card)
        self.info = self._make_info()

    async def verify(self) -> None:
        """Ask the server for one token about half a second of silence, before `Ready`.

        A server that lists a model but cannot take audio (llama.cpp without an audio
        projector, a text-only model) would otherwise fail every request, first seen at
        the first question a user asks.
        """
        await self.start()
        assert self._session is not None
        try:
            async with asyncio.timeout(self.timeout):
                await self._read_models(self._session)
                wav = to_wav_bytes(np.zeros(SAMPLE_RATE // 2, np.float32), SAMPLE_RATE)
                prompt = self.family.prompt(TASK_CAPTION)
                body = {
                    **self.generation,
                    "model": self.model,
                    "messages": self.family.openai_messages(
                        prompt, base64.b64encode(wav).decode("ascii")
                    ),
                    "max_tokens": 1,
                }
                await self._request(self._session, "POST", "/chat/completions", body)
        except (LMError, TimeoutError) as err:
            await self.stop()
            reason = str(err) or f"no answer within {self.timeout:g} s"
            raise LMLoadError(
                f"the LM server at {self.base_url} does not answer audio requests ({reason}); "
                "it must serve an audio model with its audio encoder (see README: llama.cpp "
                "cannot serve MiDashengLM's audio encoder)"
            ) from err
        _LOGGER.info(
            "Audio LM %s at %s answers audio (%s prompts)",
            self.model,
            self.base_url,
            self.family.name,
        )

    async def _request(
        self, session: aiohttp.ClientSession, method: str, path: str, body: Any = None
    ) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with session.request(method, url, json=body, headers=self._headers()) as resp:
                if resp.status >= 400:
                    raise LMError(
                        f"the LM server answered {resp.status} to {path}: {await _error_text(resp)}"
                    )
                try:
                    return await resp.json(content_type=None)
                except ValueError as err:
                    raise LMError(f"the LM server sent a non-JSON answer to {path}") from err
        except aiohttp.ClientError as err:
            raise LMError(f"cannot reach the LM server at {self.base_url}: {err}") from err

    async def _generate(self, request: LMRequest) -> str:
        if self._waiting >= self.max_queue:
            raise QueueFullError("lm", 1.0)
        if self._session is None:
            await self.start()
        assert self._session is not None
        self._waiting += 1
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                name = await self._model_name(self._session)
                wav = base64.b64encode(to_wav_bytes(request.audio, SAMPLE_RATE)).decode("ascii")
                prompt = self.family.prompt(request.task, request.text)
                body = {
                    **self.generation,
                    "model": name,
                    "messages": self.family.openai_messages(prompt, wav),
                    "max_tokens": self.max_new_tokens,
                }
                data = await self._request(self._session, "POST", "/chat/completions", body)
        except TimeoutError as err:
            raise LMTimeoutError(
                f"the LM server at {self.base_url} did not answer within {self.timeout:g} s"
            ) from err
        finally:
            self._waiting -= 1
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise LMError("the LM server's answer has no choices[0].message.content") from err
        return strip_thinking(str(content or ""))


async def _error_text(resp: aiohttp.ClientResponse) -> str:
    """The message of an error answer (OpenAI, vLLM and FastAPI shapes), kept short."""
    text = await resp.text()
    try:
        import json

        data = json.loads(text)
    except ValueError:
        return text.strip()[:300] or resp.reason or "error"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])[:300]
    return text.strip()[:300]


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


__all__ = [
    "GENERIC",
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
    "check_audio",
    "family_for_model_name",
    "family_for_served_model",
    "lm_from_config",
    "load_lm",
    "parse_lm_spec",
    "select_family",
    "strip_thinking",
]
