"""`OpenAIAudioLM`: requests sent to an OpenAI-compatible `/chat/completions` endpoint (vLLM
serves MiDashengLM natively, with continuous batching)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np

from model_service.audio import to_wav_bytes
from model_service.models.lm.base import (
    SAMPLE_RATE,
    TASK_CAPTION,
    AudioLMBase,
    LMError,
    LMInfo,
    LMLoadError,
    LMRequest,
    LMTimeoutError,
    strip_thinking,
)
from model_service.models.lm.families import (
    FAMILIES,
    family_for_model_name,
    family_for_served_model,
)
from model_service.models.openai_server import OpenAIServer, error_text
from model_service.redaction import redact_text

if TYPE_CHECKING:
    pass

_LOGGER = logging.getLogger(__name__)


class OpenAIAudioLM(AudioLMBase):
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
        # The server batches (vLLM: continuous batching); here only the number of requests
        # in flight is bounded, and the wait behind them, like the in-process batcher.
        self.server = OpenAIServer(
            base_url,
            api_key=api_key,
            timeout=timeout,
            max_concurrency=max_concurrency,
            max_queue=max_queue,
        )
        self.base_url = self.server.base_url
        # How the server is named in answers, logs and /v1/info: never with its password.
        self.shown_url = self.server.shown_url
        self.generation = dict(generation or {})
        self.model = model
        if family is not None and family not in FAMILIES:
            raise LMLoadError(f"unknown LM family {family!r}: use one of {', '.join(FAMILIES)}")
        self._family_override = FAMILIES[family] if family else None
        self.api_key = api_key
        self.max_new_tokens = max_new_tokens
        self.timeout = timeout
        self.max_queue = max_queue
        self._model_lock = asyncio.Lock()
        self.family = self._family_override or family_for_model_name(model)
        self.info = self._make_info()

    def _make_info(self) -> LMInfo:
        return LMInfo(
            name=self.model or self.shown_url,
            backend="openai",
            family=self.family.name,
            max_new_tokens=self.max_new_tokens,
            extra={"url": self.shown_url},
        )

    async def start(self) -> None:
        """Open the HTTP session."""
        await self.server.session()

    async def stop(self) -> None:
        """Close the HTTP session."""
        await self.server.close()

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
            raise LMError(f"the LM server at {self.shown_url} lists no model; set --lm-model")
        card = next(
            (c for c in cards if isinstance(c, dict) and c.get("id") == self.model),
            cards[0] if self.model is None else None,
        )
        if card is None:
            names = ", ".join(str(c.get("id")) for c in cards if isinstance(c, dict))
            raise LMError(f"the LM server at {self.shown_url} serves {names}, not {self.model}")
        self.model = str(card["id"])
        self.family = self._family_override or family_for_served_model(card)
        self.info = self._make_info()

    async def verify(self) -> None:
        """Ask the server for one token about half a second of silence, before `Ready`.

        A server that lists a model but cannot take audio (llama.cpp without an audio
        projector, a text-only model) would otherwise fail every request, first seen at
        the first question a user asks.
        """
        session = await self.server.session()
        try:
            async with asyncio.timeout(self.timeout):
                await self._read_models(session)
                wav = to_wav_bytes(np.zeros(SAMPLE_RATE // 2, np.float32), SAMPLE_RATE)
                prompt = self.family.prompt(TASK_CAPTION)
                body = self._body(prompt, base64.b64encode(wav).decode("ascii"), 1)
                await self._request(session, "POST", "/chat/completions", body)
        except (LMError, TimeoutError) as err:
            await self.stop()
            reason = str(err) or f"no answer within {self.timeout:g} s"
            raise LMLoadError(
                f"the LM server at {self.shown_url} does not answer audio requests ({reason}); "
                "it must serve an audio model with its audio encoder (see README: llama.cpp "
                "cannot serve MiDashengLM's audio encoder)"
            ) from err
        _LOGGER.info(
            "Audio LM %s at %s answers audio (%s prompts)",
            self.model,
            self.shown_url,
            self.family.name,
        )

    async def _request(
        self, session: aiohttp.ClientSession, method: str, path: str, body: Any = None
    ) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with session.request(
                method, url, json=body, headers=self.server.headers()
            ) as resp:
                if resp.status >= 400:
                    raise LMError(
                        f"the LM server answered {resp.status} to {path}: {await error_text(resp)}"
                    )
                try:
                    return await resp.json(content_type=None)
                except ValueError as err:
                    raise LMError(f"the LM server sent a non-JSON answer to {path}") from err
        except aiohttp.ClientError as err:
            reason = redact_text(str(err), self.base_url)
            raise LMError(f"cannot reach the LM server at {self.shown_url}: {reason}") from err

    async def _generate(self, request: LMRequest) -> str:
        self.server.admit("lm")
        session = await self.server.session()
        self.server.waiting += 1
        try:
            async with asyncio.timeout(self.timeout), self.server.slots:
                name = await self._model_name(session)
                wav = base64.b64encode(to_wav_bytes(request.audio, SAMPLE_RATE)).decode("ascii")
                prompt = self.family.prompt(request.task, request.text)
                body = self._body(prompt, wav, self.max_new_tokens, name)
                data = await self._request(session, "POST", "/chat/completions", body)
        except TimeoutError as err:
            raise LMTimeoutError(
                f"the LM server at {self.shown_url} did not answer within {self.timeout:g} s"
            ) from err
        finally:
            self.server.waiting -= 1
        return strip_thinking(strip_special_tokens(answer_text(data)))

    def _body(
        self, prompt: str, wav_base64: str, max_tokens: int, model: str | None = None
    ) -> dict[str, Any]:
        """A chat-completions request in the family's conventions."""
        body: dict[str, Any] = {
            **self.generation,
            "model": model or self.model,
            "messages": self.family.openai_messages(prompt, wav_base64),
            "max_tokens": max_tokens,
        }
        if self.family.text_modalities is not None:
            body["modalities"] = list(self.family.text_modalities)
        return body


def answer_text(data: Any) -> str:
    """The text of a chat-completions answer.

    An omni server (vLLM-Omni) may answer with a choice per output stage, the text in
    `message.content` and speech in `message.audio`; the first choice with text is the answer.
    """
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise LMError("the LM server's answer has no choices[0].message.content")
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return str(message["content"])
    first = choices[0].get("message") if isinstance(choices[0], dict) else None
    if isinstance(first, dict) and "content" in first and first["content"] is None:
        return ""
    raise LMError("the LM server's answer has no choices[0].message.content")


# MiMo-Audio's stream markers (<|sostm|>, <|eot|>, <|empty|>, ...), should a server hand
# them back with the text.
_SPECIAL_TOKEN = re.compile(r"<\|[a-z_]{2,16}\|>")


def strip_special_tokens(text: str) -> str:
    """Text without chat-template markers such as `<|eot|>`."""
    return _SPECIAL_TOKEN.sub("", text)
