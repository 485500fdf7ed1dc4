"""The core HTTP API on a real server: health, info, classify, auth, limits, OpenAPI, metrics."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from devtools import synth
from model_service.api.app import create_app
from model_service.config import build_config
from model_service.detection.service import Service
from model_service.models.taggers import load_tagger

RATE = 16000
TOKEN = "s3cret-token"


def wav_bytes(audio: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    """Encode audio as a WAV file in memory."""
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def smoke_clip(seconds: float = 10.0) -> np.ndarray:
    """A T3 smoke alarm starting 0.5 s into room noise, at 10 dB SNR.

    (A pulse that touches the clip's first sample has no visible onset, so the builtin
    detector cannot confirm its length; real recordings start before the alarm.)
    """
    lead = np.zeros(RATE // 2, dtype=np.float32)
    alarm = np.concatenate([lead, synth.smoke_alarm(seconds - 0.5)])
    noise = synth.pink_noise(seconds, seed=2)
    return synth.mix_at_snr(alarm, noise, 10.0)


@pytest.fixture(scope="module")
def tagger():
    """One builtin tagger for the module (loading silero takes a moment)."""
    t = load_tagger("builtin")
    yield t
    t.close()


@pytest.fixture
def make_client(aiohttp_client, tmp_path: Path, tagger):
    """Start a real service app with given config values and return a test client."""

    async def make(**values):
        values.setdefault("data_dir", tmp_path / "data")
        values.setdefault("zeroconf", False)
        config = build_config(None, values, environ={})
        service = Service.create(config, tagger)
        # The shared tagger is closed by its fixture, not by each app's cleanup.
        service.tagger = _Unclosable(tagger)  # type: ignore[assignment]
        return await aiohttp_client(create_app(service))

    return make


class _Unclosable:
    def __init__(self, inner) -> None:
        self._inner = inner
        self.info = inner.info

    def predict(self, windows):
        return self._inner.predict(windows)

    def close(self) -> None:
        return None


async def test_health_and_info(make_client) -> None:
    """Health answers ok; info lists the builtin's categories and a stable id."""
    client = await make_client()
    resp = await client.get("/v1/health")
    assert resp.status == 200
    health = await resp.json()
    assert health["status"] == "ok"
    assert health["storage"]["ok"] is True and health["storage"]["unsaved_events"] == 0
    assert health["storage"]["free_mb"] > 0
    info = await (await client.get("/v1/info")).json()
    assert info["sample_rate"] == 16000
    assert info["version"]
    ids = [c["id"] for c in info["categories"]]
    assert {"smoke_alarm", "co_alarm", "speech", "loud_noise", "appliance_beep"} <= set(ids)
    assert "dog_bark" not in ids  # the builtin tagger cannot hear dogs, and says so
    assert info["models"]["tagger"]["name"] == "builtin"
    assert "classify" in info["capabilities"]
    again = await (await client.get("/v1/info")).json()
    assert again["id"] == info["id"]


async def test_service_id_survives_restart(make_client, tmp_path: Path) -> None:
    """The stable id lives in the data dir: a new process with the same dir keeps it."""
    ids = []
    for data_dir in (tmp_path / "data", tmp_path / "data", tmp_path / "other"):
        client = await make_client(data_dir=data_dir)
        ids.append((await (await client.get("/v1/info")).json())["id"])
        await client.close()
    assert ids[0] == ids[1] != ids[2]


async def test_classify_finds_smoke_alarm(make_client) -> None:
    """A smoke alarm in noise is found with start/end inside the clip."""
    client = await make_client()
    resp = await client.post(
        "/v1/classify", data=wav_bytes(smoke_clip()), headers={"Content-Type": "audio/wav"}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["duration"] == pytest.approx(10.0, abs=0.01)
    smoke = [e for e in body["events"] if e["category"] == "smoke_alarm"]
    assert smoke, body
    assert 0.3 <= smoke[0]["start"] < 0.8  # the first pulse, dated by the pattern's onset
    assert smoke[0]["end"] <= 10.0
    assert smoke[0]["label"] == "Smoke detector, smoke alarm"
    assert set(smoke[0]) >= {"category", "label", "score", "start", "end"}


async def test_classify_noise_has_no_alarm(make_client) -> None:
    """Plain noise yields no alarm."""
    client = await make_client()
    noise = synth.pink_noise(6.0, level_dbfs=-25.0, seed=5)
    body = await (await client.post("/v1/classify", data=wav_bytes(noise))).json()
    assert not [e for e in body["events"] if e["category"] in ("smoke_alarm", "co_alarm")]


async def test_classify_raw_l16(make_client) -> None:
    """Raw big-endian PCM with its rate in the content type is accepted and resampled."""
    client = await make_client()
    audio = smoke_clip(8.0)
    rate = 48000
    from scipy.signal import resample_poly

    up = resample_poly(audio, 3, 1)
    pcm = (np.clip(up, -1, 1) * 32767).astype(">i2").tobytes()
    resp = await client.post(
        "/v1/classify", data=pcm, headers={"Content-Type": f"audio/L16;rate={rate};channels=1"}
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["duration"] == pytest.approx(8.0, abs=0.01)
    assert any(e["category"] == "smoke_alarm" for e in body["events"])


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (b"", "audio/wav"),
        (b"this is not audio at all" * 100, "audio/wav"),
        (b"\x00\x01\x02", "audio/L16;rate=16000;channels=1"),
        (wav_bytes(np.full(1600, np.nan, dtype=np.float32), subtype="FLOAT"), "audio/wav"),
    ],
    ids=["empty", "garbage", "odd-l16", "all-nan"],
)
async def test_classify_bad_audio_is_400(make_client, data: bytes, ctype: str) -> None:
    """Undecodable, empty, odd-length or all-NaN audio is a 400 with a JSON error."""
    client = await make_client()
    resp = await client.post("/v1/classify", data=data, headers={"Content-Type": ctype})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]
    # the server goes on
    assert (await client.get("/v1/health")).status == 200


async def test_classify_too_large_is_413(make_client) -> None:
    """Past the upload limit the answer is 413, by header or by streamed size."""
    client = await make_client(max_upload_mb=0.5)
    big = wav_bytes(np.zeros(RATE * 20, dtype=np.float32))  # ~640 kB
    resp = await client.post("/v1/classify", data=big, headers={"Content-Type": "audio/wav"})
    assert resp.status == 413
    assert "limit" in (await resp.json())["error"]

    async def chunks():
        for _ in range(40):
            yield b"\x00" * 32768  # 1.3 MB without a Content-Length

    resp = await client.post("/v1/classify", data=chunks(), headers={"Content-Type": "audio/wav"})
    assert resp.status == 413


async def test_bad_sensitivity_is_400(make_client) -> None:
    """Query validation gives a clear error."""
    client = await make_client()
    resp = await client.post("/v1/classify?sensitivity=extreme", data=wav_bytes(smoke_clip(2)))
    assert resp.status == 400


async def test_token_required_except_health(make_client) -> None:
    """With a token every endpoint but health answers 401 without the right bearer."""
    client = await make_client(token=TOKEN)
    assert (await client.get("/v1/health")).status == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        resp = await client.get("/v1/info", headers=headers)
        assert resp.status == 401
        assert "token" in (await resp.json())["error"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await client.post("/v1/classify", data=b"x")
    assert resp.status == 401
    ok = await client.get("/v1/info", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200
    assert (await client.get("/metrics")).status == 401


async def test_openapi_documents_served_endpoints(make_client) -> None:
    """/openapi.json is an OpenAPI 3.1 document covering every route and method served, with
    JSON Schemas (2020-12) for its bodies and for the WebSocket messages both ways."""
    from jsonschema import Draft202012Validator

    client = await make_client()
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    served = {r.canonical for r in client.app.router.resources()}
    assert set(doc["paths"]) == served
    for resource in client.app.router.resources():
        methods = {route.method.lower() for route in resource if route.method != "HEAD"}
        documented = set(doc["paths"][resource.canonical]) - {"parameters"}
        assert methods == documented, resource.canonical
    for path, spec in doc["paths"].items():
        for method, op in spec.items():
            if method == "parameters":
                continue
            assert op["responses"], (path, method)
            if op.get("security") != []:
                assert "401" in op["responses"], (path, method)
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert "nullable" not in str(schema), name  # 3.0 spelling; 3.1 uses type arrays
    ws = doc["paths"]["/v1/ws"]["get"]["x-websocket"]
    assert ws == {
        "client": {"$ref": "#/components/schemas/WsClientMessage"},
        "server": {"$ref": "#/components/schemas/WsServerMessage"},
    }


async def test_metrics_count_requests(make_client) -> None:
    """/metrics is Prometheus text with request counts and latencies by endpoint."""
    client = await make_client()
    await client.get("/v1/info")
    await client.post("/v1/classify", data=b"")
    text = await (await client.get("/metrics")).text()
    assert 'midasheng_http_requests_total{endpoint="/v1/info",method="GET",status="200"}' in text
    assert 'endpoint="/v1/classify",method="POST",status="400"' in text
    assert "midasheng_http_request_duration_seconds_bucket" in text
    assert "midasheng_batch_size_bucket" in text


async def test_concurrent_classify_requests(make_client) -> None:
    """Several clients at once all get answers (the batcher serves them together)."""
    client = await make_client()
    clip = wav_bytes(smoke_clip(6.0))
    responses = await asyncio.gather(*(client.post("/v1/classify", data=clip) for _ in range(4)))
    bodies = [await r.json() for r in responses]
    assert all(r.status == 200 for r in responses)
    assert all(b == bodies[0] for b in bodies)


async def test_unknown_route_is_json_404(make_client) -> None:
    """Even a wrong path gets the JSON error shape."""
    client = await make_client()
    resp = await client.get("/v1/nope")
    assert resp.status == 404
    assert json.loads(await resp.text())["error"]


async def test_uploads_past_the_limit_are_refused_before_reading(make_client) -> None:
    """With max_pending_uploads in progress, the next upload gets 503 and Retry-After at
    once, its body unread; when one finishes, uploads are taken again."""
    client = await make_client(max_pending_uploads=2)
    gate = asyncio.Event()
    # Two slow uploads: bodies that arrive only when the gate opens.
    body = wav_bytes(smoke_clip(2.0))

    async def slow_body():
        yield body[:100]
        await gate.wait()
        yield body[100:]

    slow = [
        asyncio.create_task(
            client.post("/v1/classify", data=slow_body(), headers={"Content-Type": "audio/wav"})
        )
        for _ in range(2)
    ]
    await asyncio.sleep(0.3)
    never = asyncio.Event()

    async def unfinished_body():
        # Its body never completes: a server that read it first would never answer.
        yield body[:100]
        await never.wait()

    refused = await asyncio.wait_for(
        client.post("/v1/classify", data=unfinished_body(), headers={"Content-Type": "audio/wav"}),
        10,
    )
    assert refused.status == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "uploads are being processed" in (await refused.json())["error"]
    metrics = (await (await client.get("/metrics")).read()).decode()
    assert "midasheng_uploads_refused_total 1.0" in metrics  # this one only, so far
    # A client that asks first (Expect: 100-continue, as curl does for large bodies) is
    # refused before it sends its body at all.
    asked = await asyncio.wait_for(
        client.post(
            "/v1/classify", data=body, headers={"Content-Type": "audio/wav"}, expect100=True
        ),
        10,
    )
    assert asked.status == 503 and "Retry-After" in asked.headers
    gate.set()
    for task in slow:
        assert (await task).status == 200
    asked = await client.post(
        "/v1/classify", data=body, headers={"Content-Type": "audio/wav"}, expect100=True
    )
    assert asked.status == 200
    assert (
        await client.post("/v1/classify", data=body, headers={"Content-Type": "audio/wav"})
    ).status == 200
    # Other endpoints are not limited.
    assert (await client.get("/v1/info")).status == 200


async def test_no_upload_limit_when_zero(make_client) -> None:
    """max_pending_uploads: 0 turns the early refusal off (uploads wait for the model)."""
    client = await make_client(max_pending_uploads=0)
    body = wav_bytes(smoke_clip(2.0))
    answers = await asyncio.gather(
        *(
            client.post("/v1/classify", data=body, headers={"Content-Type": "audio/wav"})
            for _ in range(6)
        )
    )
    assert [a.status for a in answers] == [200] * 6
