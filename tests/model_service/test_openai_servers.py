"""The OpenAI-compatible LM backend against servers shaped like vLLM and llama.cpp.

vLLM lists what it serves in `/v1/models` as `id` (the `--served-model-name`, often
"default") with the model it loaded as `root`, and answers 404 for any other model name.
llama.cpp's server lists its GGUF and refuses `input_audio` with a 500 when it was started
without an audio projector ("audio input is not supported - hint: ... mmproj"). Both fakes
reproduce those shapes; the service must pick MiDashengLM's prompts from vLLM's `root` and
refuse to start against a server that cannot take audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import logging
from pathlib import Path
import threading
import time
from typing import Any

from aiohttp import web
import pytest

from model_service.__main__ import run
from model_service.models.lm import LMLoadError, OpenAIAudioLM
from tests.model_service.test_lm import noise

MIDASHENGLM_ID = "mispeech/midashenglm-7b-1021-bf16"
MMPROJ_ERROR = (
    "audio input is not supported - hint: if this is unexpected, you may need to provide the mmproj"
)


class VllmShaped:
    """`vllm serve mispeech/midashenglm-7b-1021-bf16 --served-model-name default`."""

    def __init__(self, served: str = "default", root: str = MIDASHENGLM_ID) -> None:
        self.served, self.root = served, root
        self.bodies: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def models(self, request: web.Request) -> web.Response:
        card = {
            "id": self.served,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": self.root,
            "parent": None,
            "max_model_len": 8192,
            "permission": [],
        }
        return web.json_response({"object": "list", "data": [card]})

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        if body.get("model") != self.served:
            error = {
                "object": "error",
                "message": f"The model `{body.get('model')}` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            }
            return web.json_response(error, status=404)
        message = {"role": "assistant", "content": "A smoke alarm beeps."}
        return web.json_response({"choices": [{"index": 0, "message": message}]})


class LlamaCppShaped:
    """`llama-server -m midashenglm-0.6b.gguf` with no audio projector (mmproj)."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def models(self, request: web.Request) -> web.Response:
        card = {
            "id": "midashenglm-0.6b-q8_0.gguf",
            "object": "model",
            "created": int(time.time()),
            "owned_by": "llamacpp",
            "meta": {"n_ctx_train": 32768},
        }
        return web.json_response({"object": "list", "data": [card]})

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list) and any(
                part.get("type") == "input_audio" for part in content
            ):
                error = {"code": 500, "message": MMPROJ_ERROR, "type": "server_error"}
                return web.json_response({"error": error}, status=500)
        message = {"role": "assistant", "content": "text only"}
        return web.json_response({"choices": [{"index": 0, "message": message}]})


async def test_vllm_served_as_default_gets_midashenglm_prompts(aiohttp_server) -> None:
    """The family comes from `root`; requests name the served model ("default")."""
    fake = VllmShaped()
    server = await aiohttp_server(fake.app)
    lm = OpenAIAudioLM(str(server.make_url("/v1")), timeout=5)
    try:
        await lm.verify()
        assert lm.info.as_dict()["family"] == "midashenglm"
        assert await lm.describe(noise(1.0)) == "A smoke alarm beeps."
    finally:
        await lm.stop()
    assert [body["model"] for body in fake.bodies] == ["default", "default"]
    system, user = fake.bodies[-1]["messages"]
    assert system["content"] == "You are a helpful language and speech assistant."
    assert user["content"][0] == {"type": "text", "text": "Caption the audio."}
    assert user["content"][1]["type"] == "input_audio"


async def test_lm_family_overrides_what_the_server_lists(aiohttp_server) -> None:
    """`--lm-family` wins over `root`, e.g. for a served model named after nothing known."""
    fake = VllmShaped(root="/models/my-finetune")
    server = await aiohttp_server(fake.app)
    guessed = OpenAIAudioLM(str(server.make_url("/v1")), timeout=5)
    told = OpenAIAudioLM(str(server.make_url("/v1")), family="midashenglm", timeout=5)
    try:
        await guessed.verify()
        await told.verify()
        assert guessed.info.as_dict()["family"] == "generic"
        assert told.info.as_dict()["family"] == "midashenglm"
    finally:
        await guessed.stop()
        await told.stop()
    with pytest.raises(LMLoadError, match="unknown LM family"):
        OpenAIAudioLM("http://127.0.0.1:1/v1", family="gpt")


async def test_a_server_that_refuses_audio_stops_the_start(aiohttp_server) -> None:
    """llama.cpp without an audio projector: the probe fails with the server's reason."""
    server = await aiohttp_server(LlamaCppShaped().app)
    lm = OpenAIAudioLM(str(server.make_url("/v1")), timeout=5)
    with pytest.raises(LMLoadError, match=r"does not answer audio requests.*mmproj"):
        await lm.verify()


async def test_a_wrong_model_name_stops_the_start(aiohttp_server) -> None:
    """`--lm-model` naming a model the server does not serve is refused before Ready."""
    server = await aiohttp_server(VllmShaped().app)
    lm = OpenAIAudioLM(str(server.make_url("/v1")), model="mispeech/midashenglm-7b", timeout=5)
    with pytest.raises(LMLoadError, match="serves default, not mispeech/midashenglm-7b"):
        await lm.verify()


@pytest.fixture
def llama_cpp_url() -> Iterator[str]:
    """A llama.cpp-shaped server on loopback, in a thread of its own (the CLI runs its loop)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(LlamaCppShaped().app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_cli_refuses_an_lm_server_without_audio(
    llama_cpp_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service exits 3 before Ready, saying why, instead of failing the first question."""
    argv = ["--lm", f"openai:{llama_cpp_url}", "--data-dir", str(tmp_path), "--no-zeroconf"]
    with caplog.at_level(logging.INFO):
        code = run([*argv, "--asr", "none"])
    assert code == 3
    assert "does not answer audio requests" in caplog.text
    assert "Ready" not in caplog.text


async def test_generation_settings_and_thinking_over_openai(aiohttp_server) -> None:
    """Generation overrides travel in the body; a reasoning section never reaches the user."""

    class Thinking(VllmShaped):
        async def chat(self, request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            content = "<think>three beeps, a pause</think>\n\nA smoke alarm beeps."
            message = {"role": "assistant", "content": content}
            return web.json_response({"choices": [{"index": 0, "message": message}]})

    fake = Thinking(root="mispeech/midashenglm-0.6b-fp32")
    server = await aiohttp_server(fake.app)
    lm = OpenAIAudioLM(str(server.make_url("/v1")), generation={"temperature": 0.6}, timeout=5)
    try:
        await lm.verify()
        assert await lm.describe(noise(1.0)) == "A smoke alarm beeps."
    finally:
        await lm.stop()
    assert all(body["temperature"] == 0.6 for body in fake.bodies)
