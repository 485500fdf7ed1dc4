"""Record the integration's test fixtures from a real service process.

    .venv-svc/bin/python -m devtools.record_fixtures [--out DIR]

Starts `python -m model_service` with every capability the integration uses: a stand-in CED
tagger built offline (the real CED hub code path, so all categories), pocketsphinx, an ffmpeg
source (Kitchen, streaming from a local HTTP server with credentials in its URL, which the
service redacts) and a pushed source (Hall). It then pushes a smoke alarm to Hall over `/v1/ws` and saves what the service answered and sent: `/v1/info`,
`/v1/sources`, `/v1/events`, `/openapi.json` and one WebSocket message of each kind. Every
answer is checked against the service's OpenAPI document as it is recorded.

The integration's tests build their messages from these files only, and its contract test
compares its parser with the recorded `openapi.json`; re-record after changing the wire
contract. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from pathlib import Path
import tempfile
from typing import Any

import aiohttp
from aiohttp import web
import numpy as np
import soundfile as sf

from devtools import synth
from devtools.contract import checking_client_traffic
from devtools.harness import ROOT, ServiceProcess, wait_for
from devtools.tiny_models import build_tiny_ced

RATE = 16000
TOKEN = "recording-token"
# The id a service keeps in its data folder; preset so that re-recording keeps the
# integration's device identifiers (and its snapshots) stable.
SERVICE_ID = "3f0c9d2e8a7b4c1d9e6f5a4b3c2d1e0f"
OUT = ROOT / "tests" / "components" / "midasheng" / "fixtures"


async def _noise_stream(request: web.Request) -> web.StreamResponse:
    """An endless WAV of room noise, sent in real time (as a camera's audio arrives)."""
    response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
    await response.prepare(request)
    header = io.BytesIO()
    with sf.SoundFile(header, "w", RATE, 1, "PCM_16", format="WAV") as wav:
        wav.write(np.zeros(0, np.int16))
    # A streaming WAV: the header's sizes say "as long as it goes" (ffmpeg reads on).
    data = bytearray(header.getvalue())
    data[4:8] = data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    await response.write(bytes(data))
    second = 0
    try:
        while True:
            noise = synth.pink_noise(1.0, level_dbfs=-42.0, seed=second)
            await response.write(_pcm16(noise))
            second += 1
            await asyncio.sleep(1.0)
    except ConnectionError:
        pass  # the service stopped the source
    return response


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


async def record(out: Path) -> dict[str, Any]:
    """Run the service, exercise it, and return the recordings by file name."""
    recorded: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_text, checking_client_traffic():
        tmp = Path(tmp_text)
        build_tiny_ced(tmp / "ced-stand-in")
        (tmp / "data").mkdir()
        (tmp / "data" / "service_id").write_text(SERVICE_ID + "\n", encoding="utf-8")
        app = web.Application()
        app.router.add_get("/stream1.wav", _noise_stream)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        service = ServiceProcess(
            tmp / "data",
            token=TOKEN,
            log_path=tmp / "service.log",
            extra_args=["--tagger", "ced-stand-in", "--trust-remote-code", "--asr", "pocketsphinx"],
            cwd=tmp,
        )
        await service.start(timeout=180)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with aiohttp.ClientSession(headers=headers) as http:
                base = service.url
                created = await http.post(
                    f"{base}/v1/sources",
                    json={
                        "name": "Kitchen",
                        "url": f"http://viewer:hunter2@127.0.0.1:{port}/stream1.wav",
                    },
                )
                assert created.status == 201, await created.text()
                hall = await http.post(f"{base}/v1/sources", json={"name": "Hall", "kind": "push"})
                assert hall.status == 201, await hall.text()

                async def kitchen_streaming() -> dict[str, Any] | None:
                    sources = await (await http.get(f"{base}/v1/sources")).json()
                    kitchen = next(s for s in sources["sources"] if s["id"] == "kitchen")
                    ready = kitchen["state"] == "streaming" and kitchen["level_dbfs"] is not None
                    return sources if ready else None

                recorded["sources.json"] = await wait_for(
                    kitchen_streaming, "the kitchen source to stream", timeout=60
                )
                recorded["info.json"] = await (await http.get(f"{base}/v1/info")).json()
                recorded["openapi.json"] = await (await http.get(f"{base}/openapi.json")).json()

                messages: list[dict[str, Any]] = []
                async with http.ws_connect(f"{base}/v1/ws") as ws:
                    await ws.send_json({"type": "subscribe", "after": 0})
                    noise = synth.pink_noise(22.0, level_dbfs=-50.0, seed=1)
                    alarm = synth.smoke_alarm(9.0, level_dbfs=-20.0)
                    noise[3 * RATE : 3 * RATE + alarm.size] += alarm
                    await ws.send_json({"type": "push_start", "source": "hall", "rate": RATE})
                    pcm = _pcm16(noise)
                    for i in range(0, len(pcm), RATE):
                        await ws.send_bytes(pcm[i : i + RATE])
                    await ws.send_json({"type": "push_stop", "source": "hall"})
                    ended = False
                    while not ended:
                        message = await asyncio.wait_for(ws.receive_json(), 60)
                        messages.append(message)
                        event = message.get("event") or {}
                        ended = (
                            message["type"] == "event"
                            and event.get("category") == "smoke_alarm"
                            and event.get("end") is not None
                        )
                    await ws.send_json({"type": "bogus"})
                    while (message := await asyncio.wait_for(ws.receive_json(), 10))[
                        "type"
                    ] != "error":
                        pass
                    messages.append(message)

                def first(kind: str, **where: Any) -> dict[str, Any]:
                    for message in messages:
                        if message["type"] == kind and all(
                            (message.get("event") or {}).get(k) == v for k, v in where.items()
                        ):
                            return message
                    raise SystemExit(f"the service sent no {kind} message {where or ''}")

                recorded["ws_subscribed.json"] = first("subscribed")
                recorded["ws_source.json"] = first("source")
                recorded["ws_level.json"] = first("level")
                recorded["ws_event_start.json"] = first("event", category="smoke_alarm", end=None)
                recorded["ws_event_end.json"] = next(
                    m
                    for m in messages
                    if m["type"] == "event"
                    and m["event"]["category"] == "smoke_alarm"
                    and m["event"]["end"] is not None
                )
                recorded["ws_error.json"] = first("error")
                recorded["events.json"] = await (
                    await http.get(f"{base}/v1/events", params={"after": 0})
                ).json()
        finally:
            await service.stop()
            await runner.cleanup()
    out.mkdir(parents=True, exist_ok=True)
    for name, value in recorded.items():
        (out / name).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    return recorded


def main() -> None:
    """Record into --out (default: the integration tests' fixture folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    recorded = asyncio.run(record(args.out))
    print(f"recorded {len(recorded)} fixtures into {args.out}")


if __name__ == "__main__":
    main()
