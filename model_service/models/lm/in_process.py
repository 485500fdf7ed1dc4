"""`TransformersAudioLM`: a model run in process, concurrent requests batched together and
generated in a worker thread under `torch.inference_mode()`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from model_service.models.batcher import DynamicBatcher
from model_service.models.devices import (
    DeviceError,
    check_runs_or_float32,
    torch_device,
    torch_dtype,
)
from model_service.models.hub import check_model_folder, read_config
from model_service.models.lm.base import (
    SAMPLE_RATE,
    TASK_CAPTION,
    AudioLMBase,
    LMInfo,
    LMLoadError,
    LMRequest,
    LMTimeoutError,
    strip_thinking,
)
from model_service.models.lm.families import MIDASHENGLM, _decoder_type, select_family

if TYPE_CHECKING:
    pass

_LOGGER = logging.getLogger(__name__)


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


class TransformersAudioLM(AudioLMBase):
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
        check_model_folder(spec, LMLoadError)
        return read_config(spec, trust_remote_code=trust_remote_code, error=LMLoadError)

    @staticmethod
    def _load_processor(spec: str, trust_remote_code: bool) -> tuple[Any, Any]:
        from transformers import AutoProcessor, AutoTokenizer

        try:
            processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                spec, trust_remote_code=trust_remote_code
            )
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
                tokenizer = AutoTokenizer.from_pretrained(  # type: ignore[no-untyped-call]
                    spec, trust_remote_code=trust_remote_code
                )
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

        def to_float32() -> None:
            self.dtype = self._torch.float32
            self.model = self.model.float()

        self.dtype = check_runs_or_float32(
            self.spec,
            self.dtype,
            lambda: self._generate_now(probe, max_new_tokens=1),
            to_float32,
            LMLoadError,
        )

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
