"""Audio LMs: a tiny Qwen2-Audio in process, and a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
from pathlib import Path
import threading
from typing import Any

from aiohttp import FormData, web
import numpy as np
import pytest
import soundfile as sf

from devtools.tiny_models import (
    MIDASHENGLM_CHAT_TEMPLATE,
    build_tiny_ast,
    build_tiny_midashenglm,
    build_tiny_qwen2_audio,
)
from model_service.__main__ import run
from model_service.api.app import create_app
from model_service.api.common import STORE_KEY, STREAMS_KEY
from model_service.audio import AudioError
from model_service.config import build_config
from model_service.detection.service import Service
from model_service.models.batcher import QueueFullError
from model_service.models.lm import (
    GENERIC,
    MIDASHENGLM,
    QWEN2_AUDIO,
    LMError,
    LMLoadError,
    LMRequest,
    LMTimeoutError,
    OpenAIAudioLM,
    TransformersAudioLM,
    family_for_model_name,
    load_lm,
    parse_lm_spec,
    select_family,
    strip_thinking,
)
from model_service.models.lm.in_process import _strip_prompt
from model_service.models.taggers import Detection, TaggerInfo

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RATE = 16000


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    """White noise, float32 16 kHz."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32)


def wav_bytes(audio: np.ndarray) -> bytes:
    """Encode audio as a 16-bit WAV file in memory."""
    buf = io.BytesIO()
    sf.write(buf, audio, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-Audio that always says something (no end token)."""
    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("qwen2audio"), never_stop=True)


@pytest.fixture
async def lm(qwen_dir: Path):
    """The tiny Qwen2-Audio loaded through `load_lm`, started on this test's loop."""
    model = load_lm(str(qwen_dir), device="cpu", max_new_tokens=6, max_batch=16, max_wait_ms=20)
    assert isinstance(model, TransformersAudioLM)
    await model.start()
    yield model
    await model.stop()


# -- family selection and prompts (plain arguments, nothing loaded) ---------------------------


def test_family_selection() -> None:
    """Families come from the config's model_type / architectures / auto_map, or a served name."""
    auto_map = {
        "AutoConfig": "configuration_midashenglm.MiDashengLMConfig",
        "AutoModelForCausalLM": "modeling_midashenglm.MiDashengLMModel",
    }
    assert select_family("midashenglm", ["MiDashengLMModel"], auto_map) is MIDASHENGLM
    assert (
        select_family(None, None, {"AutoModelForCausalLM": "modeling_midashenglm.X"}) is MIDASHENGLM
    )
    assert select_family("qwen2_audio", ["Qwen2AudioForConditionalGeneration"]) is QWEN2_AUDIO
    assert select_family(None, ["Qwen2AudioForConditionalGeneration"]) is QWEN2_AUDIO
    assert select_family("voxtral", ["VoxtralForConditionalGeneration"]) is GENERIC
    assert family_for_model_name("mispeech/midashenglm-7b") is MIDASHENGLM
    assert family_for_model_name("Qwen/Qwen2-Audio-7B-Instruct") is QWEN2_AUDIO
    assert family_for_model_name(None) is GENERIC
    assert MIDASHENGLM.remote_code
    assert MIDASHENGLM.model_class == "AutoModelForCausalLM"


def test_midashenglm_prompts_and_messages() -> None:
    """MiDashengLM's system prompt, text-then-audio order and caption/ASR/QA prompts."""
    assert MIDASHENGLM.prompt("caption") == "Caption the audio."
    assert MIDASHENGLM.prompt("transcribe") == "Transcribe the speech into text"
    assert MIDASHENGLM.prompt("transcribe", "en") == "Transcribe the speech into text <|en|>"
    assert MIDASHENGLM.prompt("transcribe", "zh_CN") == "Transcribe the speech into text <|zh|>"
    assert MIDASHENGLM.prompt("ask", "Is a dog barking?") == "Is a dog barking?"
    with pytest.raises(ValueError):
        MIDASHENGLM.prompt("ask")
    messages = MIDASHENGLM.conversation("Caption the audio.")
    assert messages[0] == {
        "role": "system",
        "content": [{"type": "text", "text": "You are a helpful language and speech assistant."}],
    }
    assert [part["type"] for part in messages[1]["content"]] == ["text", "audio"]
    assert [p["type"] for p in QWEN2_AUDIO.conversation("x")[0]["content"]] == ["audio", "text"]
    openai = MIDASHENGLM.openai_messages("Caption the audio.", "UklGRg==")
    assert openai[0] == {
        "role": "system",
        "content": "You are a helpful language and speech assistant.",
    }
    assert openai[1]["content"][1] == {
        "type": "input_audio",
        "input_audio": {"data": "UklGRg==", "format": "wav"},
    }


def test_parse_lm_spec() -> None:
    """openai:<url> selects the HTTP backend; anything else is a model id or folder."""
    assert parse_lm_spec("openai:http://127.0.0.1:8000/v1/") == (
        "openai",
        "http://127.0.0.1:8000/v1",
    )
    assert parse_lm_spec("mispeech/midashenglm-7b") == ("transformers", "mispeech/midashenglm-7b")
    with pytest.raises(LMLoadError, match="openai:<base URL>"):
        parse_lm_spec("openai:localhost:8000")


# -- the in-process backend on a tiny Qwen2-Audio ----------------------------------------------


async def test_describe_ask_transcribe(lm: TransformersAudioLM) -> None:
    """All three requests answer text; info says what is loaded."""
    assert lm.info.as_dict() == {
        "name": lm.spec,
        "backend": "transformers",
        "family": "qwen2_audio",
        "device": "cpu",
        "max_new_tokens": 6,
        "model_type": "qwen2_audio",
        "dtype": "float32",
    }
    caption = await lm.describe(noise(1.0))
    answer = await lm.ask(noise(0.5, 1), "Is a dog barking?")
    text = await lm.transcribe(noise(1.5, 2), "en")
    assert all(isinstance(t, str) and t for t in (caption, answer, text))


async def test_concurrent_requests_generate_together(lm: TransformersAudioLM, monkeypatch) -> None:
    """Concurrent requests are padded (left) into one batch and answer as they would alone."""
    sizes: list[int] = []
    inner = lm.generate_batch

    def recording(requests: list[LMRequest]) -> list[str]:
        sizes.append(len(requests))
        return inner(requests)

    monkeypatch.setattr(lm.batcher, "_fn", recording)
    questions = ["What is it?", "Is there a dog barking somewhere in the distance?", "Loud?"]
    clips = [noise(0.4 + 0.3 * i, i) for i in range(len(questions))]
    alone = [await lm.ask(c, q) for c, q in zip(clips, questions, strict=True)]
    sizes.clear()
    together = await asyncio.gather(
        *(lm.ask(c, q) for c, q in zip(clips, questions, strict=True)),
        *(lm.describe(noise(1.0, 10 + i)) for i in range(5)),
    )
    assert max(sizes) > 1, sizes
    assert sum(sizes) == 8
    assert together[:3] == alone

    inputs = lm.prepare(
        [LMRequest(clips[0], "ask", questions[0]), LMRequest(clips[1], "ask", questions[1])]
    )
    mask = inputs["attention_mask"]
    assert mask.shape[0] == 2
    assert bool(mask[:, -1].all())  # every prompt ends at the last position: left padding
    assert int(mask[0].sum()) < int(mask[1].sum())
    assert not bool(mask[0, 0])


def test_out_of_memory_splits_the_batch(lm: TransformersAudioLM, monkeypatch) -> None:
    """A batch the GPU cannot hold is retried in halves; answers keep their order."""
    import torch

    sizes: list[int] = []

    def fake(requests, *, max_new_tokens: int) -> list[str]:
        sizes.append(len(requests))
        if len(requests) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [r.text or "" for r in requests]

    monkeypatch.setattr(lm, "_generate_now", fake)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    requests = [LMRequest(noise(0.1), "ask", str(i)) for i in range(5)]
    assert lm.generate_batch(requests) == ["0", "1", "2", "3", "4"]
    assert sizes == [5, 2, 3, 1, 2]


async def test_input_checks_and_timeout(lm: TransformersAudioLM, monkeypatch) -> None:
    """Too long or empty audio and empty questions are refused; a slow model times out."""
    with pytest.raises(AudioError, match="at most 30 s"):
        await lm.describe(np.zeros(31 * RATE, np.float32))
    with pytest.raises(AudioError, match="empty"):
        await lm.describe(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="empty"):
        await lm.ask(noise(0.5), "   ")

    release = threading.Event()

    def slow(requests: list[LMRequest]) -> list[str]:
        release.wait(5)
        return ["late"] * len(requests)

    monkeypatch.setattr(lm.batcher, "_fn", slow)
    lm.timeout = 0.2
    with pytest.raises(LMTimeoutError, match=r"within 0\.2 s"):
        await lm.describe(noise(0.5))
    release.set()


def test_lm_load_errors(tmp_path: Path) -> None:
    """Missing folders, non-LMs and remote code without permission fail with clear messages."""
    with pytest.raises(LMLoadError, match="does not exist"):
        TransformersAudioLM(str(tmp_path / "nowhere"))
    ast = build_tiny_ast(tmp_path / "ast", num_layers=1)
    with pytest.raises(LMLoadError, match="no audio LM processor"):
        TransformersAudioLM(str(ast))
    remote = tmp_path / "midashenglm"
    remote.mkdir()
    (remote / "config.json").write_text(
        json.dumps(
            {
                "model_type": "midashenglm",
                "auto_map": {"AutoConfig": "configuration_midashenglm.MiDashengLMConfig"},
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(LMLoadError, match="--trust-remote-code"):
        TransformersAudioLM(str(remote))


@pytest.mark.parametrize("decoder", ["qwen2", "qwen3"])
async def test_midashenglm_through_remote_code(
    tmp_path_factory: pytest.TempPathFactory, decoder: str
) -> None:
    """MiDashengLM's interface (7B: Qwen2 decoder, 0.6B: Qwen3) loads and generates in batches.

    The audio placeholder becomes as many tokens as the Dasheng frame arithmetic gives (1 s:
    101 STFT frames / 4 / 5 = 5; 0.25 s: 26 / 4 / 5 = 1), inside one audio bos/eos pair, and
    the stand-in refuses any other count, as the real model's embedding merge would.
    """
    folder = build_tiny_midashenglm(tmp_path_factory.mktemp("midashenglm"), decoder=decoder)
    with pytest.raises(LMLoadError, match="--trust-remote-code"):
        load_lm(str(folder))
    lm = load_lm(str(folder), trust_remote_code=True, max_new_tokens=4, max_wait_ms=20)
    assert isinstance(lm, TransformersAudioLM)
    assert lm.info.family == "midashenglm"
    assert lm.info.extra["decoder"] == decoder

    inputs = lm.prepare(
        [
            LMRequest(noise(1.0), "caption"),
            LMRequest(noise(0.25, 1), "transcribe", "en"),
        ]
    )
    assert set(inputs) == {"input_ids", "attention_mask", "input_values", "audio_length"}
    assert inputs["audio_length"].tolist() == [RATE, RATE // 4]
    assert bool(inputs["attention_mask"][:, -1].all())  # left padding
    first = lm.tokenizer.decode(inputs["input_ids"][0])
    second = lm.tokenizer.decode(inputs["input_ids"][1])
    assert "system\nYou are a helpful language and speech assistant.<|im_end|>" in first
    assert "user\nCaption the audio.<|audio_bos|>" + "<|AUDIO|>" * 5 + "<|audio_eos|>" in first
    assert "Transcribe the speech into text <|en|><|audio_bos|><|AUDIO|><|audio_eos|>" in second
    assert first.count("<|audio_bos|>") == second.count("<|audio_bos|>") == 1

    await lm.start()
    try:
        answers = await asyncio.gather(
            lm.describe(noise(1.0)), lm.ask(noise(0.5), "What is it?"), lm.transcribe(noise(0.7))
        )
    finally:
        await lm.stop()
    assert all(isinstance(a, str) for a in answers)


def test_midashenglm_processor_wraps_a_bare_placeholder(tmp_path: Path) -> None:
    """A template that emits only <|AUDIO|> gets the bos/eos pair from the processor, once."""
    bare = MIDASHENGLM_CHAT_TEMPLATE.replace("<|audio_bos|><|AUDIO|><|audio_eos|>", "<|AUDIO|>")
    folder = build_tiny_midashenglm(tmp_path / "bare", chat_template=bare)
    lm = TransformersAudioLM(str(folder), trust_remote_code=True, max_new_tokens=2)
    text = lm.tokenizer.decode(lm.prepare([LMRequest(noise(2.0), "caption")])["input_ids"][0])
    # 2 s: 201 frames / 4 / 5 = 10 audio tokens.
    assert "Caption the audio.<|audio_bos|>" + "<|AUDIO|>" * 10 + "<|audio_eos|>" in text
    assert text.count("<|audio_bos|>") == 1


def test_generation_settings_come_from_the_checkpoint_and_can_be_overridden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint's generation_config (its card's settings) applies; overrides win."""
    folder = build_tiny_midashenglm(
        tmp_path / "sampled", generation={"do_sample": True, "temperature": 0.7, "top_p": 0.8}
    )
    lm = TransformersAudioLM(
        str(folder), trust_remote_code=True, max_new_tokens=2, generation={"temperature": 0.2}
    )
    assert lm.model.generation_config.do_sample is True
    seen: dict[str, Any] = {}
    generate = lm.model.generate

    def recording(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return generate(**kwargs)

    monkeypatch.setattr(lm.model, "generate", recording)
    lm.generate_batch([LMRequest(noise(0.5), "caption")])
    assert seen["temperature"] == 0.2
    assert "top_p" not in seen  # the checkpoint's own 0.8 applies inside generate
    assert lm.info.extra["generation"] == {"temperature": 0.2}


def test_thinking_is_stripped_from_answers() -> None:
    """Qwen3 decoders may reason first; only the answer is returned."""
    assert strip_thinking("<think>beeps, three times</think>\n\nA smoke alarm.") == "A smoke alarm."
    assert strip_thinking("A dog barks.") == "A dog barks."
    assert strip_thinking("<think>cut off by the token lim") == ""
    assert strip_thinking("the template opened it</think> Water runs.") == "Water runs."
    assert strip_thinking("<think>a</think>One <think>b</think>two") == "One two"


def test_strip_prompt() -> None:
    """Prompt tokens are cut only when the model echoed them (MiDashengLM does not)."""
    import torch

    prompt = torch.tensor([[0, 5, 6], [7, 8, 9]])
    echoed = torch.tensor([[0, 5, 6, 1, 2], [7, 8, 9, 3, 4]])
    assert _strip_prompt(echoed, prompt).tolist() == [[1, 2], [3, 4]]
    fresh = torch.tensor([[1, 2, 1, 2], [3, 4, 3, 4]])
    assert _strip_prompt(fresh, prompt).tolist() == fresh.tolist()


def test_cli_stops_on_a_missing_lm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A missing LM folder stops the start (exit 3) before Ready, naming the folder."""
    tagger = build_tiny_ast(tmp_path / "ast", num_layers=1)
    missing = tmp_path / "no-such-lm"
    args = ["--tagger", str(tagger), "--lm", str(missing), "--asr", "none"]
    args += ["--data-dir", str(tmp_path / "d"), "--no-zeroconf"]
    with caplog.at_level(logging.INFO):
        assert run(args) == 3
    assert f"Cannot load audio LM: model folder {missing} does not exist" in caplog.text
    assert "Ready" not in caplog.text


# -- the HTTP endpoints ------------------------------------------------------------------------


class StubTagger:
    """A tagger that hears nothing (these tests are about the LM endpoints)."""

    info = TaggerInfo(
        name="stub", backend="stub", categories=("speech",), window_seconds=1.0, hop_seconds=0.5
    )

    def predict(self, windows: Any) -> list[dict[str, Detection]]:
        """Score nothing."""
        return [{"speech": Detection(0.0, "Speech")} for _ in windows]

    def close(self) -> None:
        """Nothing to release."""


@pytest.fixture
def make_client(aiohttp_client, tmp_path: Path):
    """Start a real app around a given LM (or none)."""

    async def make(lm: Any):
        config = build_config(None, {"data_dir": tmp_path / "data", "zeroconf": False}, environ={})
        service = Service.create(config, StubTagger(), lm=lm)
        return await aiohttp_client(create_app(service))

    return make


async def test_endpoints_without_lm(make_client) -> None:
    """501 with a clear message when no audio LM is loaded."""
    client = await make_client(None)
    for path in ("/v1/describe", "/v1/ask"):
        resp = await client.post(path, data=wav_bytes(noise(0.5)))
        assert resp.status == 501
        assert "--lm" in (await resp.json())["error"]
    info = await (await client.get("/v1/info")).json()
    assert info["models"]["lm"] is None
    assert "describe" not in info["capabilities"]


async def test_endpoints_with_lm(make_client, qwen_dir: Path) -> None:
    """Raw body, multipart, live source and event clip inputs, and their errors."""
    model = TransformersAudioLM(str(qwen_dir), max_new_tokens=4)
    client = await make_client(model)
    info = await (await client.get("/v1/info")).json()
    assert info["models"]["lm"]["family"] == "qwen2_audio"
    assert {"describe", "ask"} <= set(info["capabilities"])

    resp = await client.post("/v1/describe", data=wav_bytes(noise(1.0)))
    assert resp.status == 200, await resp.text()
    assert isinstance((await resp.json())["text"], str)

    form = FormData()
    form.add_field("audio", wav_bytes(noise(1.0)), filename="a.wav", content_type="audio/wav")
    form.add_field("question", "What was that?")
    resp = await client.post("/v1/ask", data=form)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["text"]

    resp = await client.post("/v1/ask?question=Loud%3F", data=wav_bytes(noise(0.5)))
    assert resp.status == 200

    resp = await client.post("/v1/ask", data=wav_bytes(noise(0.5)))
    assert resp.status == 400
    assert "question" in (await resp.json())["error"]
    resp = await client.post("/v1/describe", data=wav_bytes(noise(31.0)))
    assert resp.status == 400
    assert "30 s" in (await resp.json())["error"]
    resp = await client.post("/v1/describe", data=b"not audio at all")
    assert resp.status == 400
    resp = await client.post(
        "/v1/describe", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400

    # Live audio and event clips come from the stream manager and the event store.
    streams = client.app[STREAMS_KEY]
    store = client.app[STORE_KEY]
    heard: list[tuple[str, float]] = []

    def recent_audio(source_id: str, seconds: float) -> np.ndarray:
        heard.append((source_id, seconds))
        if source_id != "kitchen":
            raise KeyError(source_id)
        return noise(seconds)

    async def get_clip(seq: int) -> bytes | None:
        return wav_bytes(noise(2.0)) if seq == 7 else None

    streams.recent_audio = recent_audio
    store.get_clip = get_clip
    resp = await client.post("/v1/describe", json={"source": "kitchen", "seconds": 5})
    assert resp.status == 200, await resp.text()
    assert heard == [("kitchen", 5.0)]
    resp = await client.post("/v1/ask", json={"source": "kitchen", "question": "Who is there?"})
    assert resp.status == 200
    resp = await client.post("/v1/describe", json={"source": "garage"})
    assert resp.status == 404
    resp = await client.post("/v1/describe", json={"source": "kitchen", "seconds": 60})
    assert resp.status == 400
    resp = await client.post("/v1/ask", json={"event": 7, "question": "What was that?"})
    assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/describe", json={"event": 8})
    assert resp.status == 404
    resp = await client.post("/v1/describe", json={"event": "7"})
    assert resp.status == 400
    resp = await client.post("/v1/describe", json={"something": 1})
    assert resp.status == 400


# -- the OpenAI-compatible backend against a local server --------------------------------------


class FakeOpenAI:
    """A local server speaking the chat-completions API, recording what it is sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.delay = 0.0
        self.fail: tuple[int, Any] | None = None
        self.app = web.Application()
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def models(self, request: web.Request) -> web.Response:
        """List one served model, as vLLM does."""
        self.requests.append((request.path, dict(request.headers), None))
        return web.json_response({"object": "list", "data": [{"id": "mispeech/midashenglm-7b"}]})

    async def chat(self, request: web.Request) -> web.Response:
        """Answer with a fixed caption (or the configured failure / delay)."""
        body = await request.json()
        self.requests.append((request.path, dict(request.headers), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            status, payload = self.fail
            return web.json_response(payload, status=status)
        return web.json_response(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": " A dog barks. "}}
                ]
            }
        )


@pytest.fixture
async def fake_openai(aiohttp_server):
    """The fake server, started; yields (server object, base URL)."""
    fake = FakeOpenAI()
    server = await aiohttp_server(fake.app)
    return fake, str(server.make_url("/v1"))


async def test_openai_request_shape(fake_openai) -> None:
    """Audio goes as base64 WAV in input_audio, with the family's prompts and the API key."""
    fake, base = fake_openai
    lm = load_lm(f"openai:{base}", api_key="k3y", max_new_tokens=32, timeout=5)
    assert isinstance(lm, OpenAIAudioLM)
    await lm.start()
    try:
        clip = noise(1.25)
        assert await lm.describe(clip) == "A dog barks."
        assert await lm.transcribe(clip, "en") == "A dog barks."
    finally:
        await lm.stop()

    paths = [path for path, _, _ in fake.requests]
    assert paths == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]
    _, headers, body = fake.requests[1]
    assert headers["Authorization"] == "Bearer k3y"
    assert body["model"] == "mispeech/midashenglm-7b"
    assert body["max_tokens"] == 32
    system, user = body["messages"]
    assert system == {
        "role": "system",
        "content": "You are a helpful language and speech assistant.",
    }
    text_part, audio_part = user["content"]
    assert text_part == {"type": "text", "text": "Caption the audio."}
    assert audio_part["type"] == "input_audio"
    assert audio_part["input_audio"]["format"] == "wav"
    decoded, rate = sf.read(io.BytesIO(base64.b64decode(audio_part["input_audio"]["data"])))
    assert rate == RATE
    assert decoded.ndim == 1
    assert decoded.size == clip.size
    np.testing.assert_allclose(decoded, clip, atol=1e-3)
    assert fake.requests[2][2]["messages"][1]["content"][0]["text"] == (
        "Transcribe the speech into text <|en|>"
    )
    assert lm.info.as_dict()["name"] == "mispeech/midashenglm-7b"
    assert lm.info.as_dict()["family"] == "midashenglm"


async def test_openai_errors_and_timeouts(fake_openai, unused_tcp_port: int) -> None:
    """Server errors, timeouts, a dead server and a full queue each give a clear error."""
    fake, base = fake_openai
    lm = OpenAIAudioLM(base, model="served", timeout=0.3, max_concurrency=1, max_queue=1)
    await lm.start()
    try:
        fake.fail = (400, {"error": {"message": "audio too long for this model", "code": 400}})
        with pytest.raises(LMError, match=r"answered 400.*audio too long") as caught:
            await lm.describe(noise(0.5))
        assert caught.value.status == 502
        fake.fail = (200, {"choices": []})
        with pytest.raises(LMError, match="no choices"):
            await lm.describe(noise(0.5))

        fake.fail = None
        fake.delay = 1.0
        with pytest.raises(LMTimeoutError, match=r"within 0\.3 s") as timed_out:
            await lm.describe(noise(0.5))
        assert timed_out.value.status == 504

        first = asyncio.ensure_future(lm.describe(noise(0.5)))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError):
            await lm.describe(noise(0.5))
        with pytest.raises(LMTimeoutError):
            await first
    finally:
        await lm.stop()
    assert [b["model"] for _, _, b in fake.requests if b] == ["served"] * 4

    dead = OpenAIAudioLM(f"http://127.0.0.1:{unused_tcp_port}/v1", model="m", timeout=5)
    try:
        with pytest.raises(LMError, match="cannot reach"):
            await dead.describe(noise(0.5))
    finally:
        await dead.stop()


async def test_openai_through_the_api(fake_openai, make_client) -> None:
    """The HTTP API answers from the LM server, and maps its timeout to 504."""
    fake, base = fake_openai
    client = await make_client(OpenAIAudioLM(base, model="mispeech/midashenglm-7b", timeout=0.3))
    resp = await client.post("/v1/describe", data=wav_bytes(noise(1.0)))
    assert resp.status == 200
    assert await resp.json() == {"text": "A dog barks."}
    info = await (await client.get("/v1/info")).json()
    assert info["models"]["lm"]["backend"] == "openai"
    assert info["models"]["lm"]["url"] == base
    fake.delay = 1.0
    resp = await client.post("/v1/describe", data=wav_bytes(noise(1.0)))
    assert resp.status == 504
    assert "did not answer" in (await resp.json())["error"]
    fake.delay = 0.0
    fake.fail = (503, {"message": "no capacity"})
    resp = await client.post("/v1/describe", data=wav_bytes(noise(1.0)))
    assert resp.status == 502
    assert "no capacity" in (await resp.json())["error"]
