"""The event log: seq/rev semantics, persistence, clips and their retention, refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path
import sqlite3
import time

import pytest

from model_service.live.store import EventStore, StoredEvent, StoreError, iso_utc


async def _open(path: Path, **kwargs) -> EventStore:
    store = EventStore(path, **kwargs)
    await store.open()
    return store


async def _add(store: EventStore, category: str = "smoke_alarm", source: str = "hall", **kw):
    values = {
        "source": source,
        "category": category,
        "label": "Smoke detector, smoke alarm",
        "score": 0.9,
        "start": 1_800_000_000.25,
        "level_dbfs": -20.0,
    }
    values.update(kw)
    return await store.add_event(**values)


async def test_seq_and_rev(tmp_path: Path) -> None:
    """A start takes the next counter value as seq and rev; its end keeps seq, takes a new rev."""
    changes: list[StoredEvent] = []
    store = await _open(tmp_path)
    store.on_change = changes.append
    a = await _add(store)
    b = await _add(store, "speech", label="Speech")
    assert (a.seq, a.rev, b.seq, b.rev) == (1, 1, 2, 2)
    ended = await store.update_event(a.seq, end=a.start + 5.0, score=0.97)
    assert (ended.seq, ended.rev) == (1, 3)
    assert store.last_rev == 3
    await asyncio.sleep(0)  # on_change runs on the loop, in rev order
    assert [(c.seq, c.rev) for c in changes] == [(1, 1), (2, 2), (1, 3)]
    # after=N: everything that started or changed since, once, in its latest form, by rev.
    events, counter = await store.events_after(1)
    assert [(e.seq, e.rev) for e in events] == [(2, 2), (1, 3)]
    assert counter == 3
    assert (await store.events_after(3))[0] == []
    assert [e.seq for e in (await store.events_after(0, category="speech"))[0]] == [2]
    assert [e.seq for e in (await store.events_after(0, source="other"))[0]] == []
    assert len((await store.events_after(0, limit=1))[0]) == 1
    wire = ended.as_dict()
    assert wire["seq"] == 1
    assert wire["rev"] == 3
    assert wire["start"] == "2027-01-15T08:00:00.250+00:00"
    assert wire["end"] == iso_utc(a.start + 5.0)
    assert wire["duration"] == 5.0
    assert wire["has_clip"] is False
    assert set(wire) == {
        "seq",
        "rev",
        "id",
        "source",
        "category",
        "label",
        "score",
        "start",
        "end",
        "duration",
        "level_dbfs",
        "has_clip",
    }
    assert b.as_dict()["end"] is None
    assert b.as_dict()["duration"] is None
    with pytest.raises(KeyError):
        await store.update_event(99, end=1.0)
    await store.close()


async def test_counter_survives_reopen(tmp_path: Path) -> None:
    """seq strictly increases across restarts."""
    store = await _open(tmp_path)
    first = await _add(store)
    await store.update_event(first.seq, end=first.start + 1)
    await store.close()
    store = await _open(tmp_path)
    assert store.last_rev == 2
    again = await _add(store)
    assert again.seq == 3
    events, _ = await store.events_after(0)
    assert [e.seq for e in events] == [1, 3]
    await store.close()


async def test_open_events_closed_after_crash(tmp_path: Path) -> None:
    """Events a crash left open are ended (with a new rev) at the next start."""
    store = await _open(tmp_path)
    ev = await _add(store)
    await store.close()
    store = await _open(tmp_path)
    closed = await store.close_open_events()
    assert [(e.seq, e.end, e.rev) for e in closed] == [(ev.seq, ev.start, 2)]
    assert await store.close_open_events() == []
    await store.close()


async def _stored(store: EventStore, seq: int) -> StoredEvent:
    """One stored event, as the event log lists it."""
    events, _ = await store.events_after(0, limit=1000)
    return next(e for e in events if e.seq == seq)


async def test_clips_and_retention(tmp_path: Path) -> None:
    """Clips are stored per event and pruned by age and by total size."""
    store = await _open(tmp_path, clip_retention_hours=1.0, clip_max_mb=0.01)  # ~10 kB
    a = await _add(store, clip=b"RIFF" + b"a" * 4000)
    assert a.clip_bytes == 4004
    assert await store.get_clip(a.seq) == b"RIFF" + b"a" * 4000
    assert (await _stored(store, a.seq)).as_dict()["has_clip"] is True
    b = await _add(store, clip=b"b" * 4000)
    await store.set_clip(a.seq, b"A" * 3000)  # a replaced clip counts once
    assert await store.get_clip(a.seq) == b"A" * 3000
    c = await _add(store, clip=b"c" * 5000)  # 12 kB in all: the oldest goes
    assert await store.get_clip(a.seq) is None
    assert await store.get_clip(b.seq) is not None
    assert await store.get_clip(c.seq) is not None
    assert (await _stored(store, a.seq)).clip_bytes == 0
    assert not (tmp_path / "clips" / f"{a.seq}.wav").exists()
    # Age: make b's clip old.
    await store._call(
        lambda: store._db().execute(
            "UPDATE events SET clip_at = ? WHERE seq = ?", (time.time() - 7200, b.seq)
        )
    )
    assert await store.prune_clips() == 1
    assert await store.get_clip(b.seq) is None
    assert await store.get_clip(c.seq) == b"c" * 5000
    assert await store.get_clip(12345) is None
    await store.close()


async def test_orphan_clip_files_are_swept(tmp_path: Path) -> None:
    """A clip file the log does not know (crash between file and row) is removed at open."""
    store = await _open(tmp_path)
    kept = await _add(store, clip=b"x" * 10)
    await store.close()
    (tmp_path / "clips" / "777.wav").write_bytes(b"orphan")
    (tmp_path / "clips" / "5.tmp").write_bytes(b"half")
    store = await _open(tmp_path)
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == [f"{kept.seq}.wav"]
    await store.close()


async def test_corrupt_database_is_refused_and_kept(tmp_path: Path, caplog) -> None:
    """Garbage in events.db: StoreError that says corrupt and what to do; the file is untouched."""
    garbage = b"\x00garbage" * 1000
    (tmp_path / "events.db").write_bytes(garbage)
    with pytest.raises(StoreError) as err:
        await _open(tmp_path)
    assert "corrupt" in str(err.value)
    assert "move it aside" in str(err.value)
    assert (tmp_path / "events.db").read_bytes() == garbage
    assert any("corrupt" in r.getMessage() for r in caplog.records)


async def test_locked_database_is_refused(tmp_path: Path) -> None:
    """A second service on the same data dir is refused instead of sharing the log."""
    first = await _open(tmp_path)
    with pytest.raises(StoreError, match="locked"):
        await _open(tmp_path)
    await _add(first)  # the first one goes on
    await first.close()
    second = await _open(tmp_path)  # and once it is gone, the dir can be used again
    assert second.last_rev == 1
    await second.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A log written by a newer version is not touched."""
    conn = sqlite3.connect(tmp_path / "events.db")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        await _open(tmp_path)


async def test_write_failure_is_loud(tmp_path: Path, caplog) -> None:
    """A failing write raises StoreError and logs it; it is never silently dropped."""
    store = await _open(tmp_path)
    await store._call(lambda: store._db().execute("DROP TABLE events"))
    with pytest.raises(StoreError):
        await _add(store)
    assert any("write failed" in r.getMessage() for r in caplog.records)
    with pytest.raises(StoreError):
        await store.events_after(0)
    await store.close()


async def test_sources_saved(tmp_path: Path) -> None:
    """API sources are saved, replaced and deleted."""
    store = await _open(tmp_path)
    await store.save_source("hall", "api", {"name": "Hall", "kind": "push"})
    await store.save_source("cam", "api", {"name": "Cam", "kind": "ffmpeg", "url": "rtsp://x/y"})
    await store.save_source("hall", "api", {"name": "Hallway", "kind": "push"})
    await store.close()
    store = await _open(tmp_path)
    saved = await store.load_sources()
    assert saved == [
        ("hall", "api", {"name": "Hallway", "kind": "push"}),
        ("cam", "api", {"name": "Cam", "kind": "ffmpeg", "url": "rtsp://x/y"}),
    ]
    await store.delete_source("hall")
    assert [s[0] for s in await store.load_sources()] == ["cam"]
    await store.close()


async def test_closed_store_refuses(tmp_path: Path) -> None:
    """Using a store that is not open is a StoreError, not a crash."""
    store = EventStore(tmp_path)
    with pytest.raises(StoreError):
        await store.events_after(0)
