"""A full disk, for real: the service's data dir on a small tmpfs the test mounts and fills.
Smoke alarms detected meanwhile must reach a live subscriber, health must say storage is the
problem, and once space returns the alarms are stored (and survive a restart)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import json
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from devtools import synth
from devtools.harness import HarnessError, ServiceProcess, fill_disk, small_disk

RATE = 16000
ALARMS = 3


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs, unmounted afterwards."""
    try:
        with small_disk(tmp_path / "disk") as mounted:
            yield mounted
    except HarnessError as err:
        pytest.skip(str(err))


def _alarms() -> bytes:
    """Room noise with ALARMS separate T3 smoke alarms, as 16-bit PCM."""
    parts = []
    for i in range(ALARMS):
        noise = synth.pink_noise(12.0, level_dbfs=-50.0, seed=i)
        noise[RATE * 2 : RATE * 2 + RATE * 5] += synth.smoke_alarm(5.0, level_dbfs=-20.0)
        parts.append(noise)
    audio = np.clip(np.concatenate(parts), -1, 1)
    return (audio * 32767).astype("<i2").tobytes()


async def test_full_disk_alarms_are_delivered_and_stored_later(disk: Path, tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("min_free_mb: 0.5\n")
    service = ServiceProcess(
        disk / "data",
        log_path=tmp_path / "service.log",
        extra_args=["--config", str(config)],
    )
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                service.url + "/v1/sources", json={"name": "Hall", "kind": "push"}
            )
            assert resp.status == 201, await resp.text()
            sub = await session.ws_connect(service.url + "/v1/ws")
            await sub.send_json({"type": "subscribe", "after": 0})
            while (json.loads((await sub.receive(timeout=10)).data))["type"] != "subscribed":
                pass
            filler = disk / "filler"
            await asyncio.to_thread(fill_disk, filler)

            async with session.ws_connect(service.url + "/v1/ws") as pusher:
                await pusher.send_json({"type": "push_start", "source": "hall", "rate": RATE})
                data = _alarms()
                step = RATE  # half a second of 16-bit samples
                for i in range(0, len(data), step):
                    await pusher.send_bytes(data[i : i + step])
                await pusher.send_json({"type": "push_stop", "source": "hall"})
                # Every alarm, start and end, arrives live; a storage message says why the
                # service is not storing them.
                started: set[int] = set()
                ended: set[int] = set()
                storage = []
                while len(ended) < ALARMS:
                    msg = json.loads((await sub.receive(timeout=30)).data)
                    if msg["type"] == "storage":
                        storage.append(msg["storage"])
                    if msg["type"] == "event" and msg["event"]["category"] == "smoke_alarm":
                        (ended if msg["event"]["end"] else started).add(msg["event"]["seq"])
            assert len(started) == ALARMS and ended == started
            assert storage and storage[0]["ok"] is False, storage
            assert storage[0]["unsaved_events"] >= 1
            async with session.get(service.url + "/v1/health") as resp:
                health = await resp.json()
            assert resp.status == 200
            assert health["status"] == "degraded", health
            assert "Free space" in health["storage"]["problem"]
            # The event list still shows them (from memory).
            async with session.get(service.url + "/v1/events?category=smoke_alarm") as resp:
                listed = {e["seq"] for e in (await resp.json())["events"]}
            assert started <= listed

            # Space returns: the alarms are written within seconds, and the state says so.
            filler.unlink()
            while True:
                msg = json.loads((await sub.receive(timeout=15)).data)
                if msg["type"] == "storage" and msg["storage"]["ok"]:
                    break
            async with session.get(service.url + "/v1/health") as resp:
                assert (await resp.json())["status"] == "ok"
            await sub.close()
        print(f"full disk: {ALARMS} alarms delivered live, then stored; health {health}")
        await service.stop()
        await service.start()
        async with (
            aiohttp.ClientSession() as session,
            session.get(service.url + "/v1/events?category=smoke_alarm") as resp,
        ):
            stored = {e["seq"]: e for e in (await resp.json())["events"]}
        assert set(stored) == started
        assert all(e["end"] is not None for e in stored.values())
    finally:
        await service.stop()
