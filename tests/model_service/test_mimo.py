"""Xiaomi's MiMo stack behind OpenAI-compatible servers: MiMo-Audio (vLLM-Omni) for describe,
ask, transcribe and text to speech, and an OpenAI-compatible transcription server (MiMo ASR,
Whisper) for speech recognition.

The servers are `devtools/mimo_servers.py`, shaped after vLLM-Omni's serving_chat and its
MiMo-Audio examples, and vLLM's speech-to-text router (see that module's docstring).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
import io
import json
import logging
from pathlib import Path
import shutil
from typing import Any

from aiohttp import web
import numpy as np
import pytest
import soundfile as sf

from devtools.mimo_servers import OmniShaped, TranscriptionShaped, wav_b64
from devtools.stt_sentences import PHRASES, speak
from model_service.__main__ import run
from model_service.api.app import create_app
from model_service.config import build_config
from model_service.detection.service import Service
from model_service.models.asr import (
    AsrLoadError,
    FallbackRecognizer,
    OpenAITranscriptionRecognizer,
    PocketsphinxRecognizer,
    TranscriptionError,
    load_asr,
)
from model_service.models.lm import OpenAIAudioLM
from model_service.models.tts import (
    OpenAISpeechSynthesizer,
    SpeechError,
    SpeechRequest,
    TtsLoadError,
    speech_messages,
    tts_from_config,
)
from tests.model_service.test_lm import StubTagger, noise
from tests.model_service.test_openai_servers import VllmShaped

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


async def test_mimo_audio_prompts_and_answers(aiohttp_server) -> None:
    """MiMo-Audio is recognised from `root`; requests put the audio first as a data URL, ask
    for text only, prompt ASR in the speech's language; thinking and markers are stripped."""
    fake = OmniShaped(answer="<think>\nthree beeps\n</think>\nA smoke alarm beeps.<|eot|>")
    server = await aiohttp_server(fake.app)
    lm = OpenAIAudioLM(str(server.make_url("/v1")), timeout=5)
    try:
        await lm.verify()
        assert lm.info.as_dict()["family"] == "mimo_audio"
        assert await lm.describe(noise(1.0)) == "A smoke alarm beeps."
        await lm.transcribe(noise(1.0), language="zh-CN")
        await lm.transcribe(noise(1.0), language="en")
    finally:
        await lm.stop()
    assert all(body["modalities"] == ["text"] for body in fake.bodies)
    assert all(body["model"] == "MiMo-Audio-7B-Instruct" for body in fake.bodies)
    (user,) = fake.bodies[1]["messages"]
    assert user["content"][0]["type"] == "audio_url"
    assert user["content"][0]["audio_url"]["url"].startswith("data:audio/wav;base64,")
    assert user["content"][1]["type"] == "text"
    prompts = [body["messages"][-1]["content"][1]["text"] for body in fake.bodies[2:]]
    assert prompts == ["请将这段语音转换为文字", "Please transcribe this audio file"]


def test_speech_messages_follow_the_tts_examples() -> None:
    """Plain text, a voice instruction, and a reference voice, as MiMo-Audio's examples
    build them."""
    plain = speech_messages(SpeechRequest(text="dinner is ready"))
    assert plain == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Please convert this text to speech: Dinner is ready"}
            ],
        }
    ]
    styled = speech_messages(
        SpeechRequest(text="晚饭好了", language="zh", instruction="用温柔的声音")
    )
    assert styled[0] == {
        "role": "system",
        "content": "你需要根据指定的风格指令和文本内容来生成语音。",
    }
    assert styled[1]["content"][0]["text"] == "请将这段文字转换为语音: 晚饭好了(用温柔的声音)"
    cloned = speech_messages(SpeechRequest(text="Hello there", reference=noise(2.0)))
    system = cloned[0]["content"]
    assert system[0]["text"].startswith("你需要根据指定的风格指令")
    assert system[1]["type"] == "audio_url"
    clip, rate = sf.read(io.BytesIO(base64.b64decode(system[1]["audio_url"]["url"].split(",")[1])))
    assert (rate, clip.size) == (16000, 32000)


@needs_espeak
async def test_speech_streams_in_pieces_as_the_server_makes_them(aiohttp_server) -> None:
    """Each streamed piece is handed on when it arrives: the first piece is out while the
    server still holds back the second."""
    fake = OmniShaped(piece_seconds=0.3)
    fake.gate = asyncio.Event()
    server = await aiohttp_server(fake.app)
    tts = OpenAISpeechSynthesizer(str(server.make_url("/v1")), timeout=10)
    try:
        await tts.verify()
        pieces = tts.speak(SpeechRequest(text="The washing machine has finished"))
        rate, first = await anext(pieces)
        assert rate == 24000 and len(first) == 2 * int(0.3 * 24000)
        assert fake.held  # the server has not sent the second piece yet
        fake.gate.set()
        rest = [pcm async for _, pcm in pieces]
    finally:
        await tts.stop()
    total = (len(first) + sum(map(len, rest))) / 2 / 24000
    said = speak("The washing machine has finished").size / 16000
    assert abs(total - said) < 0.05
    (body,) = fake.bodies
    assert body["modalities"] == ["audio"] and body["stream"] is True


async def test_a_whole_answer_and_upstream_errors(aiohttp_server) -> None:
    """A server that answers the whole speech at once (`message.audio.data`) works too; an
    error event, speech that is not audio and a model that does not speak are refused."""
    speech = (np.sin(np.arange(24000) * 0.05) * 0.3).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, speech, 24000, format="WAV", subtype="PCM_16")
    answers: list[Any] = [
        web.json_response(
            {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "hi"}},
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "audio": {"id": "a", "data": base64.b64encode(buf.getvalue()).decode()},
                        },
                    },
                ]
            }
        )
    ]

    async def chat(request: web.Request) -> web.StreamResponse:
        answer = answers.pop(0)
        if isinstance(answer, bytes):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(answer)
            return response
        return answer

    fake = OmniShaped()
    app = web.Application()
    app.router.add_get("/v1/models", fake.models)
    app.router.add_post("/v1/chat/completions", chat)
    server = await aiohttp_server(app)
    tts = OpenAISpeechSynthesizer(str(server.make_url("/v1")), timeout=5)
    try:
        await tts.verify()
        pieces = [p async for p in tts.speak(SpeechRequest(text="hi"))]
        assert [(rate, len(pcm)) for rate, pcm in pieces] == [(24000, 48000)]
        answers.append(b'data: {"error": {"message": "CUDA out of memory", "code": 500}}\n\n')
        with pytest.raises(SpeechError, match="CUDA out of memory"):
            [p async for p in tts.speak(SpeechRequest(text="hi"))]
        bogus = base64.b64encode(b"not a wav").decode()
        chunk = json.dumps({"modality": "audio", "choices": [{"delta": {"content": bogus}}]})
        answers.append(f"data: {chunk}\n\ndata: [DONE]\n\n".encode())
        with pytest.raises(SpeechError, match="not a readable WAV"):
            [p async for p in tts.speak(SpeechRequest(text="hi"))]
        answers.append(b"data: [DONE]\n\n")
        with pytest.raises(SpeechError, match="without speech"):
            [p async for p in tts.speak(SpeechRequest(text="hi"))]
    finally:
        await tts.stop()

    midasheng = await aiohttp_server(VllmShaped().app)
    refused = OpenAISpeechSynthesizer(str(midasheng.make_url("/v1")), timeout=5)
    with pytest.raises(TtsLoadError, match="does not generate speech"):
        await refused.verify()


async def test_which_model_speaks(aiohttp_server) -> None:
    """`--tts openai:<url>` is its own server; without it a MiMo-Audio LM speaks, and any
    other LM, or none, leaves a reason for `/v1/info`."""
    omni = await aiohttp_server(OmniShaped().app)
    midasheng = await aiohttp_server(VllmShaped().app)
    url = str(omni.make_url("/v1"))
    lm = OpenAIAudioLM(url, timeout=5)
    other = OpenAIAudioLM(str(midasheng.make_url("/v1")), timeout=5)
    try:
        await lm.verify()
        await other.verify()
        tts, why = await tts_from_config(None, lm)
        assert tts is not None and why is None and tts.model == "MiMo-Audio-7B-Instruct"
        await tts.stop()
        tts, why = await tts_from_config(f"openai:{url}", other)
        assert tts is not None and tts.info.as_dict()["url"] == url
        await tts.stop()
        tts, why = await tts_from_config(None, other)
        assert tts is None and "default (midashenglm) does not generate speech" in str(why)
        tts, why = await tts_from_config("none", lm)
        assert tts is None and "--tts none" in str(why)
        tts, why = await tts_from_config(None, None)
        assert tts is None and "--tts openai:" in str(why)
        with pytest.raises(TtsLoadError, match="does not generate speech"):
            await tts_from_config(f"openai:{midasheng.make_url('/v1')}", None)
        with pytest.raises(TtsLoadError, match='takes "openai:<base url>"'):
            await tts_from_config("mimo", None)
    finally:
        await lm.stop()
        await other.stop()


@pytest.fixture
def speak_client(aiohttp_client, aiohttp_server, tmp_path: Path):
    """A real app with MiMo-Audio (the fake vLLM-Omni) as its speech model, or none."""

    made: list[int] = []

    async def make(with_tts: bool = True, **fake_args: Any) -> tuple[Any, OmniShaped]:
        made.append(1)
        fake = OmniShaped(**fake_args)
        tts = None
        if with_tts:
            server = await aiohttp_server(fake.app)
            tts = OpenAISpeechSynthesizer(str(server.make_url("/v1")), timeout=10)
            await tts.verify()
        data_dir = tmp_path / f"data{len(made)}"
        config = build_config(None, {"data_dir": data_dir, "zeroconf": False}, environ={})
        service = Service.create(
            config, StubTagger(), tts=tts, tts_reason=None if tts else "no speech model here"
        )
        return await aiohttp_client(create_app(service)), fake

    return make


@needs_espeak
async def test_speak_endpoint(speak_client) -> None:
    """`/v1/speak`: a WAV with exact sizes, or streamed with the header first; voices and
    instructions reach the model; `/v1/info` describes the speech model."""
    client, fake = await speak_client(piece_seconds=0.4)
    info = await (await client.get("/v1/info")).json()
    tts = info["models"]["tts"]
    assert tts["available"] is True and tts["name"] == "MiMo-Audio-7B-Instruct"
    assert {"default", "calm"} <= {v["id"] for v in tts["voices"]}
    assert "speak" in info["capabilities"]

    resp = await client.post("/v1/speak", json={"text": "The dishwasher is done", "voice": "calm"})
    assert resp.status == 200 and resp.content_type == "audio/wav"
    audio, rate = sf.read(io.BytesIO(await resp.read()))
    said = speak("The dishwasher is done").size / 16000
    assert rate == 24000 and abs(audio.size / rate - said) < 0.05
    user = fake.bodies[-1]["messages"][-1]["content"][0]["text"]
    assert (
        user
        == "Please convert this text to speech: The dishwasher is done(Speak calmly and slowly, in a soft voice.)"
    )

    resp = await client.post(
        "/v1/speak", json={"text": "Front door opened", "stream": True, "language": "en-GB"}
    )
    body = await resp.read()
    assert resp.status == 200 and body[4:8] == b"\xff\xff\xff\xff"
    streamed = np.frombuffer(body[44:], "<i2")
    assert abs(streamed.size / 24000 - speak("Front door opened").size / 16000) < 0.05

    voice = speak("This is my voice, please copy it", "en-gb")
    wav = io.BytesIO()
    sf.write(wav, voice, 16000, format="WAV")
    resp = await client.post(
        "/v1/speak",
        json={"text": "Hello", "reference": base64.b64encode(wav.getvalue()).decode()},
    )
    assert resp.status == 200
    assert fake.bodies[-1]["messages"][0]["content"][1]["type"] == "audio_url"


async def test_speak_refuses_bad_requests(speak_client) -> None:
    """Clear 400s, the reason for 501, and nothing sent to the model for a bad request."""
    client, fake = await speak_client()
    bad = [
        ({}, "'text'"),
        ({"text": "  "}, "'text'"),
        ({"text": "x" * 1001}, "at most 1000"),
        ({"text": "hi", "voice": "pirate"}, "'voice' must be one of"),
        ({"text": "hi", "language": "fr"}, "not one the speech model speaks"),
        ({"text": "hi", "instruction": "x" * 301}, "at most 300"),
        ({"text": "hi", "reference": "%%%"}, "base64"),
        ({"text": "hi", "reference_event": 99}, "no stored clip"),
        ({"text": "hi", "stream": "yes"}, "'stream'"),
        ({"text": "hi", "url": "file:///etc/passwd"}, "unknown fields: url"),
        ([1, 2], "JSON object"),
    ]
    for body, message in bad:
        resp = await client.post("/v1/speak", json=body)
        assert resp.status == 400, body
        assert message in (await resp.json())["error"], body
    short = io.BytesIO()
    sf.write(short, noise(0.3), 16000, format="WAV")
    resp = await client.post(
        "/v1/speak", json={"text": "hi", "reference": base64.b64encode(short.getvalue()).decode()}
    )
    assert resp.status == 400 and "at least 1 s" in (await resp.json())["error"]
    assert fake.bodies == []

    off, _ = await speak_client(with_tts=False)
    resp = await off.post("/v1/speak", json={"text": "hi"})
    assert resp.status == 501 and (await resp.json())["error"] == "no speech model here"
    info = await (await off.get("/v1/info")).json()
    assert info["models"]["tts"] == {"available": False, "reason": "no speech model here"}
    assert "speak" not in info["capabilities"]


async def test_openai_transcription(aiohttp_server) -> None:
    """`--asr openai:<url>`: the multipart form vLLM takes, the served model from `/models`,
    the server's text back; its errors are the caller's 502, a wrong model stops the start."""
    heard: list[int] = []

    def recognise(samples: np.ndarray) -> str:
        heard.append(samples.size)
        return " unlock the front door "

    fake = TranscriptionShaped(recognise=recognise)
    server = await aiohttp_server(fake.app)
    url = str(server.make_url("/v1"))
    asr = load_asr(f"openai:{url}")
    assert isinstance(asr, OpenAITranscriptionRecognizer)
    try:
        await asr.verify()
        result = await asr.transcribe(noise(1.5), language="en-US")
        assert (result.text, result.language) == ("unlock the front door", "en")
        assert heard == [24000]
        (form,) = fake.forms
        assert form["model"] == "whisper-large-v3-turbo" and form["language"] == "en"
        assert form["response_format"] == "json" and form["rate"] == 16000
        assert asr.info.as_dict()["name"] == "whisper-large-v3-turbo"
        assert asr.info.as_dict()["endpoint"] == "audio/transcriptions"
    finally:
        await asr.stop()

    wrong = OpenAITranscriptionRecognizer(url, model="whisper-large-v3")
    with pytest.raises(AsrLoadError, match="serves whisper-large-v3-turbo, not whisper-large-v3"):
        await wrong.verify()
    failing = TranscriptionShaped(recognise=lambda s: 1 / 0)  # type: ignore[arg-type,return-value]
    failing_server = await aiohttp_server(failing.app)
    broken = OpenAITranscriptionRecognizer(
        str(failing_server.make_url("/v1")), model="whisper-large-v3-turbo"
    )
    try:
        with pytest.raises(TranscriptionError, match="answered 500") as err:
            await broken.transcribe(noise(0.5))
        assert err.value.status == 502
    finally:
        await broken.stop()
    with pytest.raises(AsrLoadError, match="needs an http"):
        load_asr("openai:gpu-box:8000")


async def test_mimo_asr_through_chat_completions(aiohttp_server) -> None:
    """MiMo-V2.5-ASR as Xiaomi's platform serves it: chat completions with the WAV as an
    `input_audio` data URL and the language in `asr_options`; a server that does not list its
    models is used with the model named."""
    fake = TranscriptionShaped(
        served="mimo-v2.5-asr", list_models=False, recognise=lambda samples: " 打开前门 "
    )
    server = await aiohttp_server(fake.app)
    url = str(server.make_url("/v1"))
    asr = load_asr(f"openai:{url}", model="mimo-v2.5-asr")
    assert isinstance(asr, OpenAITranscriptionRecognizer)
    try:
        await asr.verify()
        assert asr.info.as_dict()["endpoint"] == "chat/completions"
        result = await asr.transcribe(noise(1.0), language="zh-CN")
        assert (result.text, result.language) == ("打开前门", "zh")
        assert fake.forms == [
            {"model": "mimo-v2.5-asr", "language": "zh", "rate": 16000, "chat": True}
        ]
    finally:
        await asr.stop()
    unnamed = OpenAITranscriptionRecognizer(url)
    with pytest.raises(AsrLoadError, match="lists no model; set --asr-model"):
        await unnamed.verify()


@needs_espeak
async def test_rejected_speech_goes_to_the_transcription_server(aiohttp_server) -> None:
    """The phrase grammar keeps known commands; what it rejects goes to the server."""
    fake = TranscriptionShaped(recognise=lambda samples: "unlock the front door")
    server = await aiohttp_server(fake.app)
    asr = load_asr("pocketsphinx", fallback=f"openai:{server.make_url('/v1')}")
    assert isinstance(asr, FallbackRecognizer)
    assert isinstance(asr.grammar, PocketsphinxRecognizer)
    await asr.open_vocabulary.verify()  # type: ignore[attr-defined]
    await asr.start()
    try:
        known = await asr.transcribe(speak("what did you hear"), language="en", phrases=PHRASES)
        assert known.text == "what did you hear" and fake.forms == []
        unknown = await asr.transcribe(
            speak("unlock the front door"), language="en", phrases=PHRASES
        )
        assert unknown.text == "unlock the front door" and len(fake.forms) == 1
    finally:
        await asr.stop()


@pytest.fixture
def unreachable_url() -> Iterator[str]:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"


def test_cli_stops_when_a_named_server_is_not_there(
    unreachable_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A transcription or speech server that is named but not there stops the start."""
    base = ["--data-dir", str(tmp_path), "--no-zeroconf"]
    with caplog.at_level(logging.INFO):
        assert run([*base, "--asr", f"openai:{unreachable_url}"]) == 3
    assert "transcription server at" in caplog.text and "Ready" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run([*base, "--asr", "none", "--tts", f"openai:{unreachable_url}"]) == 3
    assert "speech server at" in caplog.text and "Ready" not in caplog.text


@needs_espeak
async def test_a_client_that_leaves_ends_the_request_to_the_model(speak_client) -> None:
    """A listener that hangs up mid-speech frees its place: the request to the model ends
    then, not when the model finishes."""
    from model_service.api.common import SERVICE_KEY

    client, fake = await speak_client(piece_seconds=0.3)
    fake.gate = asyncio.Event()  # the model holds back everything after the first piece
    tts = client.server.app[SERVICE_KEY].tts
    resp = await client.post("/v1/speak", json={"text": "A long story", "stream": True})
    assert (await resp.content.readexactly(44))[:4] == b"RIFF"
    assert fake.held and tts.server.waiting == 1
    resp.close()
    for _ in range(100):
        if tts.server.waiting == 0:
            break
        await asyncio.sleep(0.02)
    assert tts.server.waiting == 0
    fake.gate.set()


@needs_espeak
async def test_speech_that_fails_part_way_ends_the_stream_early(speak_client) -> None:
    """A model that fails after the first piece: a streamed answer breaks off (the status
    has gone out), and a whole one is a 502 with the server's reason."""
    import aiohttp

    client, fake = await speak_client(piece_seconds=0.3)
    original = fake._stream

    async def failing(request, request_id, modalities, speech):  # type: ignore[no-untyped-def]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        piece = json.dumps(
            {"modality": "audio", "choices": [{"delta": {"content": wav_b64(speech[:7200])}}]}
        )
        await response.write(f"data: {piece}\n\n".encode())
        await response.write(b'data: {"error": {"message": "decoder crashed", "code": 500}}\n\n')
        return response

    fake._stream = failing  # type: ignore[method-assign]
    resp = await client.post("/v1/speak", json={"text": "Hello there", "stream": True})
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    resp = await client.post("/v1/speak", json={"text": "Hello there"})
    assert resp.status == 502 and "decoder crashed" in (await resp.json())["error"]
    fake._stream = original  # type: ignore[method-assign]
