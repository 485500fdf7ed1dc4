"""Stand-ins for Xiaomi's MiMo servers, shaped as their upstream code answers, for tests and
the end-to-end suite (run as processes: `python -m devtools.mimo_servers omni|asr --port N`).

`OmniShaped` is `vllm serve XiaomiMiMo/MiMo-Audio-7B-Instruct --omni` with the MiMo chat
template (vLLM-Omni's entrypoints/openai/serving_chat.py and its MiMo-Audio examples):
- `/v1/models` lists the served name as `id` and the model as `root`;
- `/v1/chat/completions` takes text and `audio_url` parts (data URLs) and answers per output
  modality: text as `choices[].message.content`; speech as `choices[].message.audio`
  (`id`, `data`: a base64 24 kHz WAV, `expires_at`, `transcript: ""`); with `stream`,
  server-sent events `chat.completion.chunk` carrying a top-level `"modality"` and, for
  speech, one WAV piece per chunk in `choices[0].delta.content`, then `data: [DONE]`.
  A streamed request must name its `modalities` (upstream asserts it).
The speech is espeak-ng saying the text of the TTS prompt, cut in pieces of `piece_seconds`,
the first after `first_delay` seconds and the others `piece_delay` apart, so that the time to
the first audio byte can be measured against a known delay.

`TranscriptionShaped` is an OpenAI-compatible speech recogniser in both shapes such servers
take: `/v1/audio/transcriptions` (vLLM's speech_to_text router, as Whisper servers answer it:
a multipart form with `file`, `model`, `language`, `response_format`; `{"text", "usage"}`
back) and `/v1/chat/completions` as Xiaomi's MiMo platform serves `mimo-v2.5-asr` (one
`input_audio` part holding a WAV data URL, `asr_options.language`; the text as the message's
content). `list_models=False` makes `/v1/models` answer 404, as a server without that route
does. Its text comes from pocketsphinx's open-vocabulary decode, a real if weak recogniser.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Callable, Iterator
import contextlib
import io
import json
import re
import threading
import time
from typing import Any
import uuid

from aiohttp import web
import numpy as np
from scipy.signal import resample_poly
import soundfile as sf

from devtools.stt_sentences import speak

MIMO_ROOT = "XiaomiMiMo/MiMo-Audio-7B-Instruct"
MIMO_SERVED = "MiMo-Audio-7B-Instruct"
OUTPUT_RATE = 24000
_TTS_PROMPT = re.compile(r"^(?:Please convert this text to speech|请将这段文字转换为语音): ")


def espeak(text: str, voice: str = "en-us") -> np.ndarray:
    """espeak-ng speech as float32 mono 24 kHz (MiMo-Audio's output rate)."""
    return speak(text, voice, OUTPUT_RATE)


def wav_b64(samples: np.ndarray, rate: int = OUTPUT_RATE) -> str:
    """Samples as a base64 16-bit WAV, as vLLM-Omni's audio output is encoded."""
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _error(status: int, message: str, kind: str = "BadRequestError") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return web.json_response(body, status=status)


class OmniShaped:
    """vLLM-Omni serving MiMo-Audio-7B-Instruct (see the module's docstring)."""

    def __init__(
        self,
        *,
        served: str = MIMO_SERVED,
        root: str = MIMO_ROOT,
        first_delay: float = 0.0,
        piece_delay: float = 0.0,
        piece_seconds: float = 0.5,
        answer: str = "<think>\nBeeps in threes.\n</think>\nA smoke alarm is beeping.",
    ) -> None:
        """A server answering `answer` to text requests and speaking TTS prompts."""
        self.served, self.root = served, root
        self.first_delay, self.piece_delay = first_delay, piece_delay
        self.piece_seconds = piece_seconds
        self.answer = answer
        # When set, the stream waits for it before each piece after the first (`held` says
        # it is waiting): a test can see what a client gets before the rest is made.
        self.gate: asyncio.Event | None = None
        self.held = False
        self.bodies: list[dict[str, Any]] = []
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def models(self, request: web.Request) -> web.Response:
        """vLLM's model list: the served name, and what was loaded as `root`."""
        card = {
            "id": self.served,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm-omni",
            "root": self.root,
            "parent": None,
            "max_model_len": 8192,
        }
        return web.json_response({"object": "list", "data": [card]})

    def _check(self, body: Any) -> str | None:
        """What upstream would refuse in this body, or None."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return "messages are required"
        if body.get("model") != self.served:
            return f"The model `{body.get('model')}` does not exist."
        modalities = body.get("modalities")
        if modalities is not None and (
            not isinstance(modalities, list) or not set(modalities) <= {"text", "audio"}
        ):
            return f"unsupported modalities {modalities!r}"
        if body.get("stream") and modalities is None:
            return "Streaming request must specify output modalities"
        for message in body["messages"]:
            content = message.get("content")
            parts = content if isinstance(content, list) else []
            for part in parts:
                if part.get("type") == "audio_url":
                    url = part.get("audio_url", {}).get("url", "")
                    if not url.startswith("data:audio/wav;base64,"):
                        return "audio_url must be a data URL here (no downloads in tests)"
                    try:
                        sf.read(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
                    except (ValueError, RuntimeError) as err:
                        return f"audio_url is not audio: {err}"
                elif part.get("type") != "text":
                    return f"unsupported content part {part.get('type')!r}"
        return None

    def _tts_text(self, body: dict[str, Any]) -> str:
        """The words a TTS prompt asks for (the instruction in parentheses left out)."""
        user = next(m for m in reversed(body["messages"]) if m.get("role") == "user")
        content = user["content"]
        text = (
            content
            if isinstance(content, str)
            else " ".join(p.get("text", "") for p in content if p.get("type") == "text")
        )
        text = _TTS_PROMPT.sub("", text.strip())
        return re.sub(r"\([^()]*\)$", "", text).strip()

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """Text, speech, or both, streamed or not, as vLLM-Omni answers."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        problem = self._check(body)
        if problem is not None:
            status = 404 if "does not exist" in problem else 400
            return _error(status, problem, "NotFoundError" if status == 404 else "BadRequestError")
        self.bodies.append(body)
        modalities = body.get("modalities") or ["text", "audio"]
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        speech = np.zeros(0, np.float32)
        if "audio" in modalities:
            speech = await asyncio.to_thread(espeak, self._tts_text(body) or "nothing")
        if body.get("stream"):
            return await self._stream(request, request_id, modalities, speech)
        await asyncio.sleep(self.first_delay)
        choices: list[dict[str, Any]] = []
        if "text" in modalities:
            message = {"role": "assistant", "content": self.answer}
            choices.append({"index": 0, "message": message, "finish_reason": "stop"})
        if "audio" in modalities:
            audio = {
                "id": f"audio-{uuid.uuid4().hex[:16]}",
                "data": wav_b64(speech),
                "expires_at": int(time.time()) + 86400,
                "transcript": "",
            }
            message = {"role": "assistant", "content": None, "audio": audio}
            choices.append({"index": 0, "message": message, "finish_reason": "stop"})
        return web.json_response(
            {
                "id": request_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.served,
                "choices": choices,
            }
        )

    async def _stream(
        self, request: web.Request, request_id: str, modalities: list[str], speech: np.ndarray
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(modality: str, delta: dict[str, Any], finish: str | None) -> None:
            chunk = {
                "id": request_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.served,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                "modality": modality,
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await asyncio.sleep(self.first_delay)
        if "text" in modalities:
            await send("text", {"role": "assistant", "content": ""}, None)
            await send("text", {"content": self.answer}, "stop")
        if "audio" in modalities:
            step = max(1, int(self.piece_seconds * OUTPUT_RATE))
            for start in range(0, speech.size, step):
                if start:
                    await asyncio.sleep(self.piece_delay)
                    if self.gate is not None:
                        self.held = True
                        await self.gate.wait()
                piece = wav_b64(speech[start : start + step])
                await send("audio", {"role": "assistant", "content": piece}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def pocketsphinx_open(samples: np.ndarray) -> str:
    """pocketsphinx's general English language model decode of 16 kHz samples."""
    import pocketsphinx

    decoder = pocketsphinx.Decoder(loglevel="ERROR")
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


class TranscriptionShaped:
    """An OpenAI-compatible transcription server (vLLM's, serving MiMo ASR or Whisper)."""

    def __init__(
        self,
        *,
        served: str = "whisper-large-v3-turbo",
        root: str = "openai/whisper-large-v3-turbo",
        recognise: Callable[[np.ndarray], str] = pocketsphinx_open,
        delay: float = 0.0,
        list_models: bool = True,
    ) -> None:
        """A server answering what `recognise` hears in 16 kHz audio."""
        self.served, self.root = served, root
        self.recognise = recognise
        self.delay = delay
        self.list_models = list_models
        self.forms: list[dict[str, Any]] = []
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.Response:
        """MiMo ASR as Xiaomi's platform serves it: chat completions with `input_audio`."""
        try:
            body = await request.json()
            (message,) = body["messages"]
            (part,) = message["content"]
            url = part["input_audio"]["data"]
            if part["type"] != "input_audio" or not url.startswith("data:audio/wav;base64,"):
                raise ValueError(part.get("type"))
        except (ValueError, KeyError, TypeError) as err:
            return _error(400, f"expected one user message with one input_audio part: {err}")
        if body.get("model") != self.served:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        samples, rate = sf.read(
            io.BytesIO(base64.b64decode(url.split(",", 1)[1])), dtype="float32", always_2d=True
        )
        language = (body.get("asr_options") or {}).get("language")
        self.forms.append(
            {"model": body["model"], "language": language, "rate": rate, "chat": True}
        )
        await asyncio.sleep(self.delay)
        text = await asyncio.to_thread(self.recognise, samples.mean(axis=1))
        answer = {"role": "assistant", "content": text}
        return web.json_response(
            {"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]}
        )

    async def models(self, request: web.Request) -> web.Response:
        """vLLM's model list (404 when the server lists none)."""
        if not self.list_models:
            return _error(404, "Not Found", "NotFoundError")
        card = {"id": self.served, "object": "model", "owned_by": "vllm", "root": self.root}
        return web.json_response({"object": "list", "data": [card]})

    async def transcriptions(self, request: web.Request) -> web.Response:
        """The multipart form in, `{"text", "usage"}` out."""
        if not request.content_type.startswith("multipart/form-data"):
            return _error(422, "Expected a multipart/form-data body")
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _error(422, "Expected 'file' to be a file-like object, not 'str'.")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        model = fields.get("model")
        if model is not None and model != self.served:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        if fields.get("response_format", "json") not in ("json", "text", "verbose_json"):
            return _error(400, "unsupported response_format")
        try:
            samples, rate = sf.read(upload.file, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as err:
            return _error(400, f"Invalid or unsupported audio file: {err}")
        self.forms.append({**fields, "filename": upload.filename, "rate": rate})
        mono = samples.mean(axis=1)
        if rate != 16000:
            mono = resample_poly(mono, 16000, rate).astype(np.float32)
        await asyncio.sleep(self.delay)
        text = await asyncio.to_thread(self.recognise, mono)
        if fields.get("response_format") == "text":
            return web.Response(text=text)
        usage = {"type": "duration", "seconds": int(np.ceil(mono.size / 16000))}
        return web.json_response({"text": text, "usage": usage})


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """Serve `app` on a loopback port from a thread and event loop of its own; yields its
    `/v1` URL. For callers that block their own loop (a CLI run, a subprocess they wait for).
    """
    ready = threading.Event()
    port: list[int] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port.append(runner.addresses[0][1])
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(timeout=10):
        raise RuntimeError("the stand-in server did not start")
    try:
        yield f"http://127.0.0.1:{port[0]}/v1"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def main(argv: list[str] | None = None) -> None:
    """Serve one stand-in on loopback until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["omni", "asr"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-delay", type=float, default=0.0)
    parser.add_argument("--piece-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.kind == "omni":
        app = OmniShaped(first_delay=args.first_delay, piece_delay=args.piece_delay).app
    else:
        # MiMo-V2.5-ASR in the shape Xiaomi's platform serves it (chat completions).
        app = TranscriptionShaped(
            served="mimo-v2.5-asr", root="XiaomiMiMo/MiMo-V2.5-ASR", delay=args.first_delay
        ).app
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
