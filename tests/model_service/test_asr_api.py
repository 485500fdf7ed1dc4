"""`POST /v1/transcribe` on a real server: multipart uploads, phrases, languages and errors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import json
from pathlib import Path
import shutil
import subprocess
from typing import Any

from aiohttp import FormData
import numpy as np
import pytest

from model_service.api.app import create_app
from model_service.config import build_config
from model_service.detection.service import Service
from model_service.models.asr import PocketsphinxRecognizer, load_asr
from model_service.models.taggers import Detection, TaggerInfo, Window

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

PHRASES = ["Turn on the kitchen light", "Turn off the kitchen light", "Open the garage door"]


def espeak_wav(text: str, voice: str = "en-us") -> bytes:
    """A WAV file (22050 Hz, 16-bit) as espeak-ng writes it; the server resamples it."""
    return subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True
    ).stdout


class _QuietTagger:
    """A tagger that hears nothing: these tests are about speech, not sound events."""

    info = TaggerInfo(
        name="quiet", backend="test", categories=("speech",), window_seconds=1.0, hop_seconds=0.5
    )

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        return [{} for _ in windows]

    def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def sphinx() -> Iterator[PocketsphinxRecognizer]:
    """One pocketsphinx recognizer for the module (each app's cleanup only stops its threads)."""
    recognizer = load_asr("pocketsphinx")
    assert isinstance(recognizer, PocketsphinxRecognizer)
    yield recognizer


@pytest.fixture
def make_client(aiohttp_client, tmp_path: Path, sphinx: PocketsphinxRecognizer):
    """Start a real service app (ASR on unless `asr=None`) and return a test client."""

    async def make(asr: Any = sphinx, **values: Any):
        values.setdefault("data_dir", tmp_path / "data")
        values.setdefault("zeroconf", False)
        config = build_config(None, values, environ={})
        service = Service.create(config, _QuietTagger(), asr=asr)
        return await aiohttp_client(create_app(service))

    return make


def form(audio: bytes | None, **fields: str) -> FormData:
    """A multipart body with an `audio` file part and text fields."""
    data = FormData()
    if audio is not None:
        data.add_field("audio", audio, filename="command.wav", content_type="audio/wav")
    for name, value in fields.items():
        data.add_field(name, value)
    return data


@needs_espeak
async def test_transcribe_multipart_with_phrases(make_client) -> None:
    """A spoken command with the expected phrases comes back exactly, with its language;
    speech that fits none of them comes back as no text."""
    client = await make_client()
    info = await (await client.get("/v1/info")).json()
    assert info["models"]["asr"]["languages"] == ["en"]
    assert "transcribe" in info["capabilities"]
    for said, voice, expected in (
        ("turn on the kitchen light", "en-us", "Turn on the kitchen light"),
        ("open the garage door", "en-us+m3", "Open the garage door"),
        ("please call my mother now", "en-us", ""),
        ("lock the back door", "en-gb", ""),
    ):
        body = form(espeak_wav(said, voice), phrases=json.dumps(PHRASES), language="en-US")
        resp = await client.post("/v1/transcribe", data=body)
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
        assert answer == {"text": expected, "language": "en"}


@needs_espeak
async def test_transcribe_raw_body(make_client) -> None:
    """A raw audio body with `?language=` uses the general model and answers some text."""
    client = await make_client()
    resp = await client.post(
        "/v1/transcribe?language=en",
        data=espeak_wav("open the garage door"),
        headers={"Content-Type": "audio/wav"},
    )
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["language"] == "en"
    assert answer["text"]


async def test_transcribe_without_asr_is_501(make_client) -> None:
    """No recognizer loaded: 501 with a message that says how to load one."""
    client = await make_client(asr=None)
    resp = await client.post("/v1/transcribe", data=form(b"RIFF"))
    assert resp.status == 501
    assert "--asr" in (await resp.json())["error"]
    info = await (await client.get("/v1/info")).json()
    assert info["models"]["asr"] is None
    assert "transcribe" not in info["capabilities"]


async def test_transcribe_bad_requests(make_client) -> None:
    """Undecodable audio, a missing part, bad phrases and a foreign language are 400s."""
    client = await make_client()
    silence = np.zeros(8000, dtype="<i2").tobytes()
    resp = await client.post("/v1/transcribe", data=form(b"this is not audio at all" * 10))
    assert resp.status == 400
    assert (await resp.json())["error"]

    resp = await client.post("/v1/transcribe", data=form(None, language="en"))
    assert resp.status == 400
    assert "audio" in (await resp.json())["error"]

    resp = await client.post("/v1/transcribe", data=form(b"RIFF", phrases='{"not": "a list"}'))
    assert resp.status == 400
    assert "JSON list" in (await resp.json())["error"]

    resp = await client.post(
        "/v1/transcribe?language=fr",
        data=silence,
        headers={"Content-Type": "audio/L16;rate=16000;channels=1"},
    )
    assert resp.status == 400
    body = await resp.json()
    assert "supported: en" in body["error"]
    assert body["languages"] == ["en"]

    resp = await client.post("/v1/transcribe", data=form(b"RIFF", language="de-DE"))
    assert resp.status == 400
    assert "supported: en" in (await resp.json())["error"]

    # Malformed multipart bodies (found by the API fuzzer as 500s): the client's error.
    resp = await client.post(
        "/v1/transcribe", data=b"", headers={"Content-Type": "multipart/form-data"}
    )
    assert resp.status == 400
    assert "malformed multipart body" in (await resp.json())["error"]
    resp = await client.post(
        "/v1/transcribe",
        data=b"--b1\r\n[]--b1--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b1"},
    )
    assert resp.status == 400
    assert "malformed" in (await resp.json())["error"]


async def test_transcribe_size_limit(make_client) -> None:
    """An audio part past the upload limit is refused with 413."""
    client = await make_client(max_upload_mb=0.01)
    big = b"RIFF" + bytes(64 * 1024)
    resp = await client.post("/v1/transcribe", data=form(big))
    assert resp.status == 413
    assert "limit" in (await resp.json())["error"]

    # Chunked (no Content-Length): the part is cut off while it streams in.
    async def chunked():
        yield (
            b'--xyz\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\nRIFF"
        )
        for _ in range(8):
            yield bytes(8 * 1024)
        yield b"\r\n--xyz--\r\n"

    resp = await client.post(
        "/v1/transcribe",
        data=chunked(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert resp.status == 413
    assert "limit" in (await resp.json())["error"]
