"""Requests that used to answer 500 (or drop the WebSocket), against a real service process:
every one is now a 4xx with a JSON error, and the service stays up."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from devtools.harness import ServiceProcess
from devtools.tiny_models import build_tiny_midashenglm

HUGE = 2**70
NESTED = "[" * 100_000


@pytest.fixture
async def asr_service(tmp_path: Path):
    """The service with its embedded recognizer and a tiny MiDashengLM (random weights, built
    offline): transcribe, describe and ask all read uploads."""
    lm = build_tiny_midashenglm(tmp_path / "lm")
    process = ServiceProcess(
        tmp_path / "data",
        log_path=tmp_path / "service.log",
        extra_args=[
            *("--asr", "pocketsphinx", "--lm", str(lm), "--trust-remote-code"),
            *("--device", "cpu"),
        ],
    )
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def _expect_4xx(resp: aiohttp.ClientResponse) -> dict:
    text = await resp.text()
    assert 400 <= resp.status < 500, (resp.status, text[:300])
    body = json.loads(text)
    assert isinstance(body.get("error"), str) and body["error"], body
    return body


async def test_no_request_answers_500(asr_service: ServiceProcess) -> None:
    """Huge integers, broken multipart bodies and deeply nested JSON are the client's error."""
    url = asr_service.url
    async with aiohttp.ClientSession() as session:
        for path in (f"/v1/events/{2**63}/clip", f"/v1/events/{HUGE}/clip"):
            async with session.get(url + path) as resp:
                await _expect_4xx(resp)
        async with session.get(f"{url}/v1/events?after={HUGE}") as resp:
            await _expect_4xx(resp)
        for path in ("/v1/describe", "/v1/ask"):
            async with session.post(url + path, json={"event": HUGE}) as resp:
                await _expect_4xx(resp)
        for content_type, body in (
            ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary parameter
            ("multipart/form-data; boundary=abc", b"no boundary in here at all"),
            ("multipart/form-data; boundary=", b"--\r\n"),
            ("multipart/form-data; boundary=abc", b"--abc\r\nContent-Disposition: form-data\r\n"),
        ):
            for path in ("/v1/transcribe", "/v1/describe", "/v1/ask", "/v1/classify"):
                async with session.post(
                    url + path, data=body, headers={"Content-Type": content_type}
                ) as resp:
                    await _expect_4xx(resp)
        for path in ("/v1/sources", "/v1/describe", "/v1/ask"):
            async with session.post(
                url + path, data=NESTED, headers={"Content-Type": "application/json"}
            ) as resp:
                await _expect_4xx(resp)
        form = aiohttp.FormData()
        form.add_field("audio", b"RIFF", filename="a.wav", content_type="audio/wav")
        form.add_field("phrases", NESTED)
        async with session.post(f"{url}/v1/transcribe", data=form) as resp:
            await _expect_4xx(resp)

        async with session.ws_connect(f"{url}/v1/ws") as ws:
            for message in (NESTED, json.dumps({"type": "subscribe", "after": HUGE})):
                await ws.send_str(message)
                answer = await ws.receive_json(timeout=10)
                assert answer["type"] == "error", answer
            # The connection is still usable.
            await ws.send_str(json.dumps({"type": "subscribe", "after": 0}))
            answer = await ws.receive_json(timeout=10)
            assert answer["type"] != "error", answer
        async with session.get(f"{url}/v1/health") as resp:
            assert resp.status == 200
