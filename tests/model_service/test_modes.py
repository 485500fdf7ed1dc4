"""Modes: home, away and night move thresholds, mark intrusions, and are kept per source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
import sqlite3

import numpy as np
import pytest

from devtools import synth
from model_service.detection.events import params_for
from model_service.live import store as store_module
from model_service.live.manager import StreamManager
from model_service.live.sources import SourceError
from model_service.live.store import EventStore
from model_service.models.taggers import load_tagger
from model_service.modes import INTRUSION_CATEGORIES, NIGHT_KEEPS, Mode, is_intrusion
from model_service.sensitivity import Sensitivity
from tests.model_service.live_helpers import make_service, pcm16, quiet


def test_away_listens_harder_for_intruders_and_night_quiets_the_rest() -> None:
    """One sensitivity step either way, only for the categories each mode names."""
    home = {c: params_for(c).on for c in ("glass_break", "speech", "dog_bark", "smoke_alarm")}
    away = {c: params_for(c, mode=Mode.AWAY).on for c in home}
    night = {c: params_for(c, mode=Mode.NIGHT).on for c in home}
    assert away["glass_break"] == pytest.approx(home["glass_break"] - 0.15)
    assert away["speech"] == pytest.approx(home["speech"] - 0.15)
    assert away["dog_bark"] == home["dog_bark"]
    assert away["smoke_alarm"] == home["smoke_alarm"]
    assert night["dog_bark"] == pytest.approx(home["dog_bark"] + 0.15)
    assert night["speech"] == pytest.approx(home["speech"] + 0.15)
    assert night["smoke_alarm"] == home["smoke_alarm"]
    assert night["glass_break"] == home["glass_break"]
    # Modes add to the sensitivity, within the same bounds.
    high_away = params_for("knock", Sensitivity.HIGH, mode=Mode.AWAY)
    assert high_away.on == pytest.approx(params_for("knock").on - 0.3)
    assert high_away.on >= 0.05 and high_away.off <= high_away.on
    assert "smoke_alarm" in NIGHT_KEEPS and "baby_cry" in NIGHT_KEEPS
    assert not INTRUSION_CATEGORIES & {"smoke_alarm", "co_alarm", "baby_cry"}
    assert is_intrusion("away", "glass_break")
    assert not is_intrusion("home", "glass_break")
    assert not is_intrusion("away", "smoke_alarm")
    with pytest.raises(ValueError, match="home, away or night"):
        Mode.parse("vacation")


@pytest.fixture(scope="module")
def builtin():
    """One builtin tagger for the module."""
    tagger = load_tagger("builtin")
    yield tagger
    tagger.close()


@pytest.fixture
async def manager(tmp_path: Path, builtin) -> AsyncIterator[StreamManager]:
    """A manager on the builtin tagger, with a config-file source in night mode."""
    service = make_service(
        tmp_path / "data",
        builtin,
        sources=[{"id": "nursery", "name": "Nursery", "kind": "push", "mode": "night"}],
    )
    await service.start()
    m = StreamManager(service)
    await m.start()
    try:
        yield m
    finally:
        await m.stop()
        await m.close()
        await service.stop()


async def _push(manager: StreamManager, source: str, audio: np.ndarray) -> None:
    runtime = manager.get(source)
    await runtime.push_start("t")
    data = pcm16(audio)
    for i in range(0, len(data), 32000):
        await runtime.feed(data[i : i + 32000])
    await runtime.push_stop("t")


def _slam() -> np.ndarray:
    audio = quiet(6.0)
    audio += synth.bang(6.0, at=2.0, peak_dbfs=-3.0, seed=4)
    return audio


async def test_events_heard_away_are_intrusions(manager: StreamManager) -> None:
    """A slam at home is a loud noise; away, the same slam is an intrusion, and says so."""
    await manager.create({"name": "Hall", "kind": "push"})
    await _push(manager, "hall", _slam())
    await manager.update("hall", {"mode": "away"})
    assert manager.get("hall").tracker.mode == "away"
    await _push(manager, "hall", _slam())
    events, _ = await manager.store.events_after(0)
    loud = [e.as_dict() for e in events if e.category == "loud_noise"]
    assert [(e["mode"], e["intrusion"]) for e in loud] == [("home", False), ("away", True)]


async def test_modes_are_validated_kept_and_restored(manager: StreamManager) -> None:
    """Mode on create and PATCH, refused when unknown, saved for API and config sources."""
    created = await manager.create({"name": "Hall", "kind": "push", "mode": "away"})
    assert created.as_dict()["mode"] == "away"
    assert manager.get("nursery").as_dict()["mode"] == "night"
    with pytest.raises(SourceError, match="home, away or night"):
        await manager.create({"name": "Porch", "kind": "push", "mode": "party"})
    with pytest.raises(SourceError, match="home, away or night"):
        await manager.update("hall", {"mode": 3})
    await manager.update("hall", {"mode": "night"})
    await manager.update("nursery", {"mode": "home"})
    saved = {i: d for i, _, d in await manager.store.load_sources()}
    assert saved["hall"]["mode"] == "night"
    assert saved["nursery"]["mode"] == "home"
    # null: back to the service's default mode.
    await manager.update("hall", {"mode": None})
    assert manager.get("hall").as_dict()["mode"] == "home"


async def test_a_mode_change_survives_a_restart(tmp_path: Path, builtin) -> None:
    """The mode given to a config-file source through the API outlives a restart."""
    sources = [{"id": "nursery", "name": "Nursery", "kind": "push", "mode": "night"}]
    for expected in ("night", "away"):
        service = make_service(tmp_path / "data", builtin, sources=sources)
        await service.start()
        m = StreamManager(service)
        await m.start()
        try:
            assert m.get("nursery").as_dict()["mode"] == expected
            assert m.get("nursery").tracker.mode == expected
            await m.update("nursery", {"mode": "away"})
        finally:
            await m.stop()
            await m.close()
            await service.stop()


async def test_events_stored_before_modes_read_as_home(tmp_path: Path) -> None:
    """A log written before schema 2 gains the mode column; its events were heard at home."""
    conn = sqlite3.connect(tmp_path / "events.db")
    conn.executescript(store_module._SCHEMA_V1)
    conn.execute(
        "INSERT INTO events (seq, rev, id, source, category, label, score, start_ts, end_ts, "
        "level_dbfs) VALUES (1, 1, 'a', 'hall', 'glass_break', 'Shatter', 0.9, 1.8e9, 1.8e9, -20)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = EventStore(tmp_path)
    await store.open()
    try:
        events, _ = await store.events_after(0)
        assert [(e.mode, e.as_dict()["intrusion"]) for e in events] == [("home", False)]
        added = await store.add_event(
            source="hall",
            category="glass_break",
            label="Shatter",
            score=0.8,
            start=1.8e9 + 5,
            level_dbfs=-20.0,
            mode="away",
        )
        assert added.as_dict()["intrusion"] is True
        events, _ = await store.events_after(0)
        assert [e.mode for e in events] == ["home", "away"]
    finally:
        await store.close()
