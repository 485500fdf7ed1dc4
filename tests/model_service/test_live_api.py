"""Live detection through the real HTTP/WebSocket API: sources, events, clips, resume, errors."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType
import numpy as np
import pytest
import soundfile as sf

from devtools.harness import ServiceProcess
from model_service.api.app import create_app
from model_service.api.common import STORE_KEY, STREAMS_KEY
from model_service.live.store import StoreError
from model_service.models.taggers import load_tagger
from tests.model_service.live_helpers import (
    ONE_THREAD,
    AudioServer,
    alarm_scene,
    make_service,
    push_audio,
    quiet,
    receive_until,
    wait_for,
    wav_bytes,
)

TOKEN = "live-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def tagger():
    """One builtin tagger for the module."""
    t = load_tagger("builtin")
    yield t
    t.close()


@pytest.fixture
def make_client(aiohttp_client, tmp_path: Path, tagger):
    """Start the real app (token required) on a data dir; returns the test client."""

    async def make(data_dir: Path | None = None, **values: Any):
        values.setdefault("token", TOKEN)
        service = make_service(data_dir or tmp_path / "data", tagger, **values)
        app = create_app(service)
        return await aiohttp_client(app, headers=AUTH)

    return make


def is_event(category: str, *, ended: bool | None = None):
    def check(m: dict[str, Any]) -> bool:
        if m.get("type") != "event" or m["event"]["category"] != category:
            return False
        return ended is None or (m["event"]["end"] is not None) == ended

    return check


# -- sources ---------------------------------------------------------------------------------


async def test_sources_crud(make_client) -> None:
    """Create push and ffmpeg sources, unique slugs, 400s, PATCH, DELETE, 404."""
    client = await make_client()
    resp = await client.post("/v1/sources", json={"name": "Kitchen", "kind": "push"})
    assert resp.status == 201, await resp.text()
    kitchen = await resp.json()
    assert kitchen["id"] == "kitchen"
    assert kitchen["kind"] == "push"
    assert kitchen["state"] == "idle"
    assert kitchen["url"] is None
    assert set(kitchen) >= {"id", "name", "kind", "url", "state", "error", "level_dbfs"}
    assert kitchen["persistent"] is True
    second = await (
        await client.post("/v1/sources", json={"name": "kitchen!", "kind": "push"})
    ).json()
    assert second["id"] == "kitchen_2"
    cam = await client.post(
        "/v1/sources", json={"name": "Hall cam", "url": "rtsp://user:pw@127.0.0.1:9/stream"}
    )
    assert cam.status == 201
    cam_body = await cam.json()
    assert cam_body["kind"] == "ffmpeg"
    assert cam_body["url"] == "rtsp://user:***@127.0.0.1:9/stream"  # password never shown
    for bad in (
        {"name": "x", "url": "ftp://host/a.wav"},
        {"name": "x", "url": "pipe:0"},
        {"name": "x", "url": "concat:/a|/b"},
        {"name": "x", "url": "-"},
        {"name": "", "kind": "push"},
        {"name": "x", "kind": "device"},
        {"name": "x", "kind": "push", "options": "-f lavfi"},
        {"name": "x"},
        ["not", "an", "object"],
    ):
        resp = await client.post("/v1/sources", json=bad)
        assert resp.status == 400, bad
        assert "error" in await resp.json()
    resp = await client.post(
        "/v1/sources", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    listed = await (await client.get("/v1/sources")).json()
    assert [s["id"] for s in listed["sources"]] == ["kitchen", "kitchen_2", "hall_cam"]
    one = await client.get("/v1/sources/kitchen")
    assert (await one.json())["name"] == "Kitchen"
    patched = await client.patch(
        "/v1/sources/kitchen", json={"sensitivity": "high", "name": "Cooking"}
    )
    assert patched.status == 200
    body = await patched.json()
    assert (body["sensitivity"], body["name"], body["id"]) == ("high", "Cooking", "kitchen")
    assert (await client.patch("/v1/sources/kitchen", json={"sensitivity": "max"})).status == 400
    assert (await client.patch("/v1/sources/kitchen", json={"url": "x"})).status == 400
    assert (await client.patch("/v1/sources/nope", json={"sensitivity": "low"})).status == 404
    assert (await client.delete("/v1/sources/hall_cam")).status == 204
    assert (await client.get("/v1/sources/hall_cam")).status == 404
    assert (await client.delete("/v1/sources/hall_cam")).status == 404
    # Auth applies to the live API like to the rest.
    async with aiohttp.ClientSession() as anon:
        resp = await anon.get(client.make_url("/v1/sources"))
        assert resp.status == 401


async def test_config_sources_and_schemes(make_client, tmp_path: Path) -> None:
    """Config-declared sources start with the service, cannot be deleted; schemes can be allowed."""
    client = await make_client(
        sources=[
            {"name": "Porch", "kind": "push"},
            {
                "id": "mic",
                "name": "Living room mic",
                "kind": "device",
                "format": "alsa",
                "device": "hw:9,9",
            },
        ],
        allowed_schemes=["rtsp", "rtsps", "http", "https", "srt"],
    )
    sources = {s["id"]: s for s in (await (await client.get("/v1/sources")).json())["sources"]}
    assert set(sources) == {"porch", "mic"}
    assert sources["porch"]["persistent"] is False
    assert sources["mic"]["kind"] == "device"
    resp = await client.delete("/v1/sources/porch")
    assert resp.status == 409
    assert "config" in (await resp.json())["error"]
    assert (
        await client.post("/v1/sources", json={"name": "s", "url": "srt://127.0.0.1:9"})
    ).status == 201
    # A device that does not exist: ffmpeg fails and the source says so while retrying.
    mic = await wait_for(lambda: _source_state(client, "mic", "retrying"), timeout=15)
    assert mic["error"]


async def _source_state(client, source_id: str, state: str) -> dict[str, Any] | None:
    body = await (await client.get(f"/v1/sources/{source_id}")).json()
    return body if body["state"] == state else None


# -- ffmpeg sources --------------------------------------------------------------------------


async def test_http_file_source_detects_and_ends(make_client) -> None:
    """An HTTP WAV source: the alarm is found, stored with a clip, and the source ends cleanly."""
    audio, _ = alarm_scene(before=3.0, alarm=8.0, after=9.0)
    async with AudioServer(wav_bytes(audio)) as server:
        client = await make_client()
        resp = await client.post(
            "/v1/sources", json={"name": "Radio", "url": server.url("full.wav")}
        )
        assert resp.status == 201
        source = await wait_for(lambda: _source_state(client, "radio", "stopped"), timeout=30)
    assert source["error"] is None  # reached its end: not a failure
    body = await (await client.get("/v1/events?source=radio&category=smoke_alarm")).json()
    assert len(body["events"]) == 1, body
    event = body["events"][0]
    assert event["end"] is not None
    assert event["has_clip"] is True
    assert event["duration"] == pytest.approx(7.5, abs=2.0)
    assert body["last_seq"] >= event["rev"]
    clip = await client.get(f"/v1/events/{event['seq']}/clip")
    assert clip.status == 200
    assert clip.content_type == "audio/wav"
    samples, rate = sf.read(io.BytesIO(await clip.read()))
    assert rate == 16000
    # ~2 s before the start to ~1 s after the end
    assert event["duration"] + 1.5 <= samples.size / rate <= event["duration"] + 3.5
    assert (await client.get("/v1/events/999999/clip")).status == 404
    # Beyond SQLite's integers (a 500 the API fuzzer found): still just no such event.
    assert (await client.get(f"/v1/events/{2**70}/clip")).status == 404
    assert (await client.get("/v1/events/-3/clip")).status == 404


async def test_source_whose_server_disappears(make_client) -> None:
    """The server drops mid-stream and is gone: the source retries with the error, nothing breaks."""
    audio, _ = alarm_scene(before=2.0, alarm=8.0, after=10.0)
    async with AudioServer(wav_bytes(audio)) as server:
        client = await make_client()
        manager = client.app[STREAMS_KEY]
        manager.backoff_max = 0.5
        await client.post("/v1/sources", json={"name": "Cam", "url": server.url("drop.wav")})
        source = await wait_for(lambda: _source_state(client, "cam", "retrying"), timeout=30)
        assert source["error"]
        # It keeps trying (the server refuses now), still reporting why.
        await wait_for(lambda: server.requests.get("/drop.wav", 0) >= 3, timeout=20)
    # The first half held the alarm's start; its event was ended when the run broke off.
    events = (await (await client.get("/v1/events?source=cam")).json())["events"]
    alarms = [e for e in events if e["category"] == "smoke_alarm"]
    assert alarms
    assert alarms[0]["end"] is not None
    assert (await client.get("/v1/health")).status == 200


async def test_stalled_stream_is_detected(make_client) -> None:
    """A stream that stops sending is noticed by the read timeout."""
    async with AudioServer(wav_bytes(quiet(5.0))) as server:
        client = await make_client()
        client.app[STREAMS_KEY].read_timeout = 1.0
        await client.post("/v1/sources", json={"name": "Stuck", "url": server.url("stall.wav")})
        source = await wait_for(lambda: _source_state(client, "stuck", "retrying"), timeout=20)
        assert "stall" in source["error"] or "timed out" in source["error"].lower()
        await client.delete("/v1/sources/stuck")


# -- WebSocket -------------------------------------------------------------------------------


async def test_push_source_idle_stalled_and_lost(make_client) -> None:
    """A push source is `idle` after a push_stop (by design), `stalled` while its pusher sends
    nothing for the read timeout (streaming again with the next audio), and `lost` when its
    pushing connection goes away without push_stop; each with the reason in `error`."""
    client = await make_client()
    client.app[STREAMS_KEY].read_timeout = 1.0
    await client.post("/v1/sources", json={"name": "Sat", "kind": "push"})
    pcm = (quiet(0.5) * 32767).astype("<i2").tobytes()
    async with client.ws_connect("/v1/ws") as pusher:
        await pusher.send_json({"type": "push_start", "source": "sat", "rate": 16000})
        await pusher.send_bytes(pcm)
        await wait_for(lambda: _source_state(client, "sat", "streaming"), timeout=10)
        source = await wait_for(lambda: _source_state(client, "sat", "stalled"), timeout=10)
        assert "no audio" in source["error"]
        await pusher.send_bytes(pcm)
        source = await wait_for(lambda: _source_state(client, "sat", "streaming"), timeout=10)
        assert source["error"] is None
        await pusher.send_json({"type": "push_stop", "source": "sat"})
        source = await wait_for(lambda: _source_state(client, "sat", "idle"), timeout=10)
        assert source["error"] is None
        # Idle by design is not stalled: no pusher, nothing expected.
        await asyncio.sleep(1.5)
        assert (await _source_state(client, "sat", "idle")) is not None
        await pusher.send_json({"type": "push_start", "source": "sat", "rate": 16000})
        await pusher.send_bytes(pcm)
        await wait_for(lambda: _source_state(client, "sat", "streaming"), timeout=10)
    # The connection closed mid-stream, without push_stop.
    source = await wait_for(lambda: _source_state(client, "sat", "lost"), timeout=10)
    assert "disconnected" in source["error"]


async def test_push_source_events_over_websocket(make_client) -> None:
    """Push faster than real time: start and end of one event (same seq), levels, source states."""
    client = await make_client()
    await client.post("/v1/sources", json={"name": "Hall", "kind": "push"})
    audio, _ = alarm_scene(before=3.0, alarm=8.0, after=9.0)
    async with client.ws_connect("/v1/ws") as ws:
        await ws.send_json({"type": "subscribe"})
        seen = await receive_until(ws, lambda m: m["type"] == "subscribed")
        assert any(m["type"] == "source" and m["source"]["id"] == "hall" for m in seen)
        async with client.ws_connect("/v1/ws") as pusher:
            await push_audio(pusher, "hall", audio)
            seen = await receive_until(ws, is_event("smoke_alarm", ended=True), timeout=30)
    starts = [m for m in seen if is_event("smoke_alarm", ended=False)(m)]
    ends = [m for m in seen if is_event("smoke_alarm", ended=True)(m)]
    assert len(starts) == 1
    assert len(ends) == 1
    start, end = starts[0]["event"], ends[0]["event"]
    assert start["seq"] == end["seq"]
    assert end["rev"] > start["rev"] == start["seq"]
    assert end["source"] == "hall"
    assert end["has_clip"]
    assert any(m["type"] == "level" and m["source"] == "hall" for m in seen)
    states = [
        m["source"]["state"] for m in seen if m["type"] == "source" and m["source"]["id"] == "hall"
    ]
    assert "streaming" in states
    # The whole push was analysed: nothing dropped although it came faster than real time.
    runtime = client.app[STREAMS_KEY].get("hall")
    await wait_for(lambda: runtime.state == "idle")
    assert runtime.processed == runtime.ring.written == audio.size
    # Audio time anchored at push_start: the event starts ~onset s after it.
    from datetime import datetime

    t_start = datetime.fromisoformat(end["start"]).timestamp()
    t_end = datetime.fromisoformat(end["end"]).timestamp()
    assert t_end - t_start == pytest.approx(end["duration"], abs=0.01)
    assert 5.0 <= end["duration"] <= 10.0


async def test_resume_after_reconnect(make_client) -> None:
    """A subscriber that drops mid-event resumes with after=<highest rev> and misses nothing."""
    client = await make_client()
    await client.post("/v1/sources", json={"name": "Hall", "kind": "push"})
    audio, _ = alarm_scene(before=2.0, alarm=8.0, after=9.0)
    first: list[dict[str, Any]] = []
    async with client.ws_connect("/v1/ws") as ws:
        await ws.send_json({"type": "subscribe", "after": 0})
        await receive_until(ws, lambda m: m["type"] == "subscribed", into=first)
        pusher = await client.ws_connect("/v1/ws")
        await pusher.send_json({"type": "push_start", "source": "hall", "rate": 16000})
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        half = round(14.0 * 16000) * 2  # past the alarm's start, before its end
        await pusher.send_bytes(pcm[:half])
        await receive_until(ws, is_event("smoke_alarm", ended=False), into=first)
    # Disconnected; the rest is pushed and the event ends while nobody listens.
    await pusher.send_bytes(pcm[half:])
    await pusher.send_json({"type": "push_stop", "source": "hall"})
    store = client.app[STORE_KEY]
    await wait_for(lambda: _ended(store))
    highest = max(m["event"]["rev"] for m in first if m["type"] == "event")
    start_seq = next(m["event"]["seq"] for m in first if is_event("smoke_alarm")(m))
    async with client.ws_connect("/v1/ws") as ws:
        await ws.send_json({"type": "subscribe", "after": highest})
        again = await receive_until(ws, lambda m: m["type"] == "subscribed")
    replayed = [m for m in again if m["type"] == "event"]
    assert [m["event"]["seq"] for m in replayed if m["event"]["category"] == "smoke_alarm"] == [
        start_seq
    ]
    assert all(m.get("replay") is True for m in replayed)
    final = next(m["event"] for m in replayed if m["event"]["seq"] == start_seq)
    assert final["end"] is not None
    subscribed = again[-1]
    assert subscribed["last_seq"] == max(m["event"]["rev"] for m in replayed)
    # The REST log agrees; paging by last_seq walks everything exactly once.
    page1 = await (await client.get("/v1/events?after=0&limit=1")).json()
    assert len(page1["events"]) == 1
    assert page1["last_seq"] == page1["events"][0]["rev"]
    rest = await (await client.get(f"/v1/events?after={page1['last_seq']}")).json()
    seqs = [e["seq"] for e in page1["events"] + rest["events"]]
    assert len(seqs) == len(set(seqs))
    assert rest["last_seq"] == subscribed["last_seq"]
    await pusher.close()


async def _ended(store) -> bool:
    events, _ = await store.events_after(0)
    return any(e.category == "smoke_alarm" and e.end is not None for e in events)


async def test_malformed_websocket_input(make_client) -> None:
    """Every bad message gets an error reply; the connection and the service go on."""
    client = await make_client(sources=[{"name": "Cam", "url": "rtsp://127.0.0.1:9/x"}])
    await client.post("/v1/sources", json={"name": "Hall", "kind": "push"})
    async with client.ws_connect("/v1/ws") as ws:
        bad_text = [
            "not json",
            "[1, 2]",
            json.dumps({"type": "dance"}),
            json.dumps({"no": "type"}),
            json.dumps({"type": "subscribe", "after": -1}),
            json.dumps({"type": "subscribe", "after": "5"}),
            json.dumps({"type": "push_start", "source": "nope", "rate": 16000}),
            json.dumps({"type": "push_start", "source": "cam", "rate": 16000}),
            json.dumps({"type": "push_start", "source": "hall", "rate": 44100}),
            json.dumps({"type": "push_start", "source": 5}),
            json.dumps({"type": "push_stop", "source": "hall"}),
        ]
        for text in bad_text:
            await ws.send_str(text)
            reply = await ws.receive_json(timeout=5)
            assert reply["type"] == "error", text
            assert reply["error"]
        await ws.send_bytes(b"\x00\x01")  # no push_start
        assert (await ws.receive_json(timeout=5))["type"] == "error"
        await ws.send_json({"type": "push_start", "source": "hall", "rate": 16000})
        await ws.send_bytes(b"\x00\x01\x02")  # odd length
        reply = await ws.receive_json(timeout=5)
        assert reply["type"] == "error"
        assert "16-bit" in reply["error"]
        await ws.send_bytes(b"\x00\x00" * 1600)  # a good frame is accepted silently
        await ws.send_json({"type": "subscribe", "after": 0})
        seen = await receive_until(ws, lambda m: m["type"] == "subscribed")
        assert all(m["type"] != "error" for m in seen)
        await ws.send_json({"type": "subscribe"})
        assert (await ws.receive_json(timeout=5))["type"] == "error"  # already subscribed
    assert (await client.get("/v1/health")).status == 200
    assert (await client.get("/v1/sources/hall")).status == 200


async def test_slow_subscriber_is_cut_off_and_resumes(make_client) -> None:
    """A subscriber that does not read overflows and is told; detection goes on; it resumes."""
    client = await make_client()
    manager = client.app[STREAMS_KEY]
    manager.subscriber_queue = 50
    await client.post("/v1/sources", json={"name": "Hall", "kind": "push"})
    slow = await client.ws_connect("/v1/ws")
    await slow.send_json({"type": "subscribe", "after": 0})
    fast = await client.ws_connect("/v1/ws")
    await fast.send_json({"type": "subscribe", "after": 0})
    await receive_until(fast, lambda m: m["type"] == "subscribed")
    # Flood: big messages until the slow reader's socket buffers and then its queue are full.
    filler = "x" * 20000
    for i in range(400):
        manager.hub.publish({"type": "level", "source": filler, "dbfs": -50.0})
        if i % 20 == 0:
            await asyncio.sleep(0.01)
            # The fast subscriber keeps up.
            while True:
                try:
                    await fast.receive(timeout=0.001)
                except TimeoutError:
                    break
    # Detection is not held up by the stuck subscriber.
    audio, _ = alarm_scene(before=2.0, alarm=8.0, after=9.0)
    async with client.ws_connect("/v1/ws") as pusher:
        await push_audio(pusher, "hall", audio)
        await receive_until(fast, is_event("smoke_alarm", ended=True), timeout=30)
    # The slow one now reads: what was sent before, then the overflow notice, then the close.
    got_overflow = False
    seen_revs = [0]
    while True:
        msg = await slow.receive(timeout=10)
        if msg.type == WSMsgType.TEXT:
            data = json.loads(msg.data)
            got_overflow = got_overflow or data["type"] == "overflow"
            if data["type"] == "event":
                seen_revs.append(data["event"]["rev"])
        else:
            break
    assert got_overflow
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    # Resuming with the highest rev it saw delivers the alarm it missed.
    async with client.ws_connect("/v1/ws") as again:
        await again.send_json({"type": "subscribe", "after": max(seen_revs)})
        replay = await receive_until(again, lambda m: m["type"] == "subscribed")
    assert any(is_event("smoke_alarm", ended=True)(m) for m in replay)
    await fast.close()
    await slow.close()


async def test_metrics_cover_live_detection(make_client) -> None:
    """/metrics: source state and level, events by category, queue depths, batch sizes."""
    client = await make_client()
    await client.post("/v1/sources", json={"name": "Hall", "kind": "push"})
    audio, _ = alarm_scene(before=2.0, alarm=8.0, after=8.0)
    async with client.ws_connect("/v1/ws") as ws:
        await ws.send_json({"type": "subscribe"})
        await push_audio(ws, "hall", audio)
        await receive_until(ws, is_event("smoke_alarm", ended=True), timeout=30)
    text = (await (await client.get("/metrics")).read()).decode()
    assert 'midasheng_source_state{source="hall",state="idle"} 1.0' in text
    assert 'midasheng_source_level_dbfs{source="hall"}' in text
    assert 'midasheng_events_total{category="smoke_alarm",source="hall"}' in text
    assert 'midasheng_batch_size_bucket{le="1.0",model="tagger"}' in text
    assert 'midasheng_queue_depth{model="tagger"}' in text
    assert "midasheng_source_backlog_seconds" in text
    assert "midasheng_ws_queue_depth" in text
    assert "midasheng_store_queue_depth" in text


async def test_corrupt_database_refuses_cleanly(make_client, tmp_path: Path, caplog) -> None:
    """A corrupt event database: a clear log line, a clean refusal, the file left untouched."""
    data = tmp_path / "broken"
    data.mkdir()
    garbage = b"this is not sqlite" * 500
    (data / "events.db").write_bytes(garbage)
    with pytest.raises(StoreError, match="corrupt"):
        await make_client(data_dir=data)
    assert (data / "events.db").read_bytes() == garbage
    assert any("corrupt" in r.getMessage() for r in caplog.records)


# -- restart of the real process -------------------------------------------------------------


async def test_events_and_sources_survive_a_restart(tmp_path: Path) -> None:
    """A real service process: sources and events persist; seq keeps increasing after restart."""
    data = tmp_path / "data"
    audio, _ = alarm_scene(before=2.0, alarm=8.0, after=8.0)
    proc = ServiceProcess(data, extra_args=["--tagger", "builtin"], env=ONE_THREAD)
    await proc.start()
    try:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{proc.url}/v1/sources", json={"name": "Hall", "kind": "push"})
            assert resp.status == 201
            async with http.ws_connect(f"{proc.url}/v1/ws") as ws:
                await ws.send_json({"type": "subscribe", "after": 0})
                await push_audio(ws, "hall", audio)
                await receive_until(ws, is_event("smoke_alarm", ended=True), timeout=40)
            before = await (await http.get(f"{proc.url}/v1/events")).json()
    finally:
        assert await proc.stop() == 0, proc.log_tail()
    assert before["events"]

    again = ServiceProcess(data, extra_args=["--tagger", "builtin"], env=ONE_THREAD)
    await again.start()
    try:
        async with aiohttp.ClientSession() as http:
            sources = await (await http.get(f"{again.url}/v1/sources")).json()
            assert [s["id"] for s in sources["sources"]] == ["hall"]
            after = await (await http.get(f"{again.url}/v1/events")).json()
            assert after["events"] == before["events"]
            assert after["last_seq"] == before["last_seq"]
            async with http.ws_connect(f"{again.url}/v1/ws") as ws:
                await ws.send_json({"type": "subscribe", "after": before["last_seq"]})
                await push_audio(ws, "hall", audio)
                seen = await receive_until(ws, is_event("smoke_alarm", ended=True), timeout=40)
            new = [m["event"] for m in seen if m["type"] == "event"]
            assert min(e["seq"] for e in new) > before["last_seq"]
    finally:
        await again.stop()
