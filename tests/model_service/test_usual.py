"""Unusual sounds: a source's usual levels by hour, learned from days compressed into seconds."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
import logging
import os
from pathlib import Path
import time

import numpy as np
import pytest

from devtools import household, synth
from model_service.detection.events import EventTracker, dbfs
from model_service.live import usual
from model_service.live.manager import StreamManager
from model_service.models.taggers import Detection, load_tagger
from tests.model_service.live_helpers import RATE, make_service, pcm16

DAY0 = calendar.timegm((2026, 11, 2, 0, 0, 0))  # a Monday, midnight UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hours of the day in UTC, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def at(day: int, hour: int, minute: int = 0, second: float = 0.0) -> float:
    """Epoch seconds of a moment `day` days after DAY0."""
    return DAY0 + day * 86400 + hour * 3600 + minute * 60 + second


def teach(model: usual.UsualModel, days: int, minutes_per_hour: int = 10) -> None:
    """Play the household's days to the model, `minutes_per_hour` of every hour."""
    for day in range(days):
        for hour in range(24):
            for m, audio in enumerate(household.minutes(hour, minutes_per_hour, day=day)):
                model.step(household.hops(audio, at(day, hour, m)))


@pytest.fixture(scope="module")
def taught() -> bytes:
    """A model taught three compressed days of the household (saved form, copied per test)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        model = usual.UsualModel()
        teach(model, days=3)
        return model.to_bytes()
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def events_of(
    model: usual.UsualModel, pieces: list[tuple[float, np.ndarray]], *, on: float | None = None
) -> list[tuple[float, float]]:
    """Unusual-sound events (start, peak score) from audio pieces (start time, samples)."""
    tracker = EventTracker(("unusual_sound",))
    if on is not None:
        tracker._params["unusual_sound"] = tracker._params["unusual_sound"].__class__(
            on=on, off=on * 0.8, hold=2.0
        )
    found = []
    for start, audio in pieces:
        hops = household.hops(audio, start)
        for (ts, samples), score in zip(hops, model.step(hops), strict=True):
            det = {"unusual_sound": Detection(score, "Unusual sound")} if score > 0 else {}
            found.extend(
                (DAY0 + update.event.start, update.event.score)
                for update in tracker.update(ts - DAY0, 0.5, dbfs(samples), det)
                if update.kind == "start"
            )
    return found


def test_levels_put_a_tone_in_its_band() -> None:
    """A 1 kHz tone at -20 dBFS shows in the 600-1200 Hz band and overall, not elsewhere."""
    t = np.arange(RATE // 2) / RATE
    tone = (10 ** (-20 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    db = usual.levels(tone)
    assert db[3] == pytest.approx(-20.0, abs=1.5)
    assert db[-1] == pytest.approx(-20.0, abs=1.5)
    assert all(db[i] < -45 for i in (0, 1, 5, 6))
    batch = usual.levels_batch(np.stack([tone, tone * 0.1]))
    assert batch[0] == pytest.approx(db)
    assert batch[1][3] == pytest.approx(-40.0, abs=1.5)


def test_a_new_source_only_learns() -> None:
    """Nothing is unusual until an hour has half an hour of learning behind it."""
    model = usual.UsualModel()
    loud = synth.bang(10.0, at=5.0, peak_dbfs=-3.0, seed=1)
    assert max(model.step(household.hops(loud, at(0, 3)))) == 0.0
    assert model.learned_hours() == 0
    for m, audio in enumerate(household.minutes(3, 40)):
        model.step(household.hops(audio, at(0, 3, m)))
    # The hour merges into what is learned only when it is over.
    assert model.learned_hours() == 0
    model.step(household.hops(household.minute(4, 0), at(0, 4)))
    assert model.learned_hours() == 1
    assert max(model.step(household.hops(loud, at(1, 3)))) >= 0.5


def test_a_night_with_one_odd_sound_gives_exactly_one_event(taught: bytes) -> None:
    """23:00 to 07:00 of a quiet night with a door slammed at 03:17: one unusual sound, at 03:17."""
    model = usual.UsualModel.from_bytes(taught)
    slam = synth.bang(60.0, at=20.0, peak_dbfs=-6.0, seed=1)
    pieces = []
    for hour in (23, 0, 1, 2, 3, 4, 5, 6):
        day = 3 if hour == 23 else 4
        for m, audio in enumerate(household.minutes(hour, 60, day=day)):
            pieces.append((at(day, hour, m), audio + slam if (hour, m) == (3, 17) else audio))
    found = events_of(model, pieces)
    assert len(found) == 1
    start, score = found[0]
    assert at(4, 3, 17, 19.5) <= start <= at(4, 3, 17, 21.0)
    assert score >= 0.5


def test_the_evening_dishwasher_is_usual_and_unusual_at_night(taught: bytes) -> None:
    """The dishwasher every evening is usual at 19:30, at the most sensitive setting too;
    the same minute at 3 a.m. is unusual, and stays so for the rest of that hour."""
    model = usual.UsualModel.from_bytes(taught)
    evening = [(at(3, 19, 30 + m), household.minute(19, m, day=3)) for m in range(10)]
    assert events_of(model, evening, on=0.2) == []
    night = [(at(4, 3, 5 + m), household.minute(19, m, day=4)) for m in range(5)]
    scores = [s for start, a in night for s in model.step(household.hops(a, start))]
    assert min(scores) >= 0.5


def test_a_sound_that_comes_back_every_night_becomes_usual(taught: bytes) -> None:
    """Played at 3 a.m. night after night, the dishwasher stops being unusual."""
    model = usual.UsualModel.from_bytes(taught)
    nights = []
    for day in range(3, 9):
        minutes = [household.minute(19, m, day=day) for m in range(20)]
        scores = [
            s for m, a in enumerate(minutes) for s in model.step(household.hops(a, at(day, 3, m)))
        ]
        model.step(household.hops(household.minute(4, 0, day=day), at(day, 4)))
        nights.append(float(np.mean(np.array(scores) >= 0.5)))
    assert nights[0] == 1.0
    assert nights[-1] == 0.0


def test_saved_and_loaded(tmp_path: Path, taught: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """The model survives a save and a load; a damaged file starts it again, with a warning."""
    model = usual.UsualModel.from_bytes(taught)
    path = usual.model_path(tmp_path, "hall")
    usual.save(path, model)
    again = usual.load(path)
    assert again.learned_hours() == model.learned_hours() == 24
    assert np.allclose(again.counts, model.counts, rtol=1e-6)
    assert usual.load(tmp_path / "none.npz").learned_hours() == 0
    path.write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING):
        assert usual.load(path).learned_hours() == 0
    assert "learned again" in caplog.text
    with pytest.raises(ValueError, match="negative"):
        usual.UsualModel.from_bytes(usual.UsualModel(-model.counts).to_bytes())


@pytest.fixture(scope="module")
def builtin():
    """One builtin tagger for the module."""
    tagger = load_tagger("builtin")
    yield tagger
    tagger.close()


async def test_a_live_source_reports_and_keeps_what_it_learned(
    tmp_path: Path, taught: bytes, builtin
) -> None:
    """A push source whose model knows quiet nights reports a slam as one unusual sound,
    learns from what it hears, and keeps that across a restart; deleting it deletes that."""
    data = tmp_path / "data"
    model = usual.UsualModel.from_bytes(taught)
    # It is night at every hour for this test: whatever the clock says now.
    for hour in range(24):
        model.counts[hour] = model.counts[3]
    usual.save(usual.model_path(data, "hall"), model)
    service = make_service(data, builtin)
    await service.start()
    manager = StreamManager(service)
    await manager.start()
    try:
        await manager.create({"name": "Hall", "kind": "push"})
        runtime = manager.get("hall")
        audio = np.concatenate([household.night_minute(m, day=9) for m in range(2)])
        audio += synth.bang(audio.size / RATE, at=70.0, peak_dbfs=-6.0, seed=2)
        await runtime.push_start("t")
        data_pcm = pcm16(audio)
        for i in range(0, len(data_pcm), 32000):
            await runtime.feed(data_pcm[i : i + 32000])
        await runtime.push_stop("t")
        events, _ = await manager.store.events_after(0)
        unusual = [e for e in events if e.category == "unusual_sound"]
        assert len(unusual) == 1
        assert 69.0 <= unusual[0].start - runtime.t0 <= 71.0
        assert runtime.as_dict()["learned_hours"] == 24
        assert runtime.usual is not None
        assert runtime.usual.pending.sum() > 0  # what it heard is being learned
    finally:
        await manager.stop()
        await manager.close()
    saved = usual.load(usual.model_path(data, "hall"))
    assert np.allclose(saved.pending, runtime.usual.pending, rtol=1e-5)
    assert np.allclose(saved.counts, runtime.usual.counts, rtol=1e-5)
    manager = StreamManager(service)
    await manager.start()
    try:
        await manager.delete("hall")
        assert not usual.model_path(data, "hall").exists()
    finally:
        await manager.stop()
        await manager.close()
        await service.stop()
