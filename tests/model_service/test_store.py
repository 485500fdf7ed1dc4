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
        "mode",
        "intrusion",
    }
    assert (wire["mode"], wire["intrusion"]) == ("home", False)
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
    """A failing write is logged and the event held and delivered; it is never silently
    dropped. Reads that fail raise StoreError."""
    delivered: list[StoredEvent] = []
    store = await _open(tmp_path, on_change=delivered.append)
    await store._call(lambda: store._db().execute("DROP TABLE events"))
    event = await _add(store)
    await asyncio.sleep(0.05)
    assert delivered == [event]
    assert store.storage["ok"] is False
    assert any("write failed" in r.getMessage() for r in caplog.records)
    assert any("delivered but not stored" in r.getMessage() for r in caplog.records)
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


async def _fill_database(store: EventStore) -> None:
    """Make SQLite answer "database or disk is full" (SQLITE_FULL), as on a full disk."""

    def cap() -> None:
        conn = store._db()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    await store._call(cap)


async def _free_database(store: EventStore) -> None:
    await store._call(lambda: store._db().execute("PRAGMA max_page_count = 1073741823"))


async def test_full_disk_events_are_delivered_held_and_stored_later(tmp_path: Path) -> None:
    """With the database full, alarms still get their seq/rev and reach subscribers; reads see
    them; health says so; once there is room they are written, and survive a restart."""
    changes: list[StoredEvent] = []
    reports: list[dict] = []
    store = await _open(tmp_path, min_free_mb=0)
    store.on_change = changes.append
    store.on_storage = reports.append
    stored = await _add(store, category="speech")
    await _fill_database(store)
    # Enough rows that the cap is surely hit.
    alarms = [
        await _add(store, start=1_800_000_100.0 + i, clip=b"RIFF" + b"x" * 100) for i in range(40)
    ]
    ended = await store.update_event(alarms[0].seq, end=1_800_000_130.0)
    await asyncio.sleep(0.05)
    assert store.storage["ok"] is False
    assert store.storage["unsaved_events"] > 0
    assert "kept in memory" in store.storage["problem"]
    assert reports and reports[-1]["ok"] is False
    # Every change was delivered, in rev order, with revs that never go back.
    revs = [e.rev for e in changes]
    assert revs == sorted(revs) and len(revs) == len(set(revs)) == 42
    assert ended.rev == store.last_rev and ended.end == 1_800_000_130.0
    # Reads include the held events in their latest form.
    events, counter = await store.events_after(stored.rev)
    assert [e.seq for e in events] == [a.seq for a in alarms[1:]] + [alarms[0].seq]
    assert events[-1].end == 1_800_000_130.0
    assert counter == store.last_rev
    # A subscriber's page limit still applies.
    page, _ = await store.events_after(0, limit=5)
    assert len(page) == 5
    # Room again: everything is written.
    await _free_database(store)
    written = await store.flush_unsaved()
    await asyncio.sleep(0.05)
    assert written == store.storage["unsaved_events"] + written > 0
    assert store.storage == {**store.storage, "ok": True, "unsaved_events": 0, "problem": None}
    assert reports[-1]["ok"] is True
    await store.close()
    again = await _open(tmp_path)
    events, _ = await again.events_after(stored.rev)
    assert len(events) == 40
    assert {e.seq: e.end for e in events}[alarms[0].seq] == 1_800_000_130.0
    assert again.last_rev == store.last_rev
    await again.close()


async def test_clips_give_way_before_events(tmp_path: Path) -> None:
    """When an event cannot be written, the oldest clips are deleted and the write retried."""
    store = await _open(tmp_path, min_free_mb=0)
    for i in range(20):
        await _add(store, start=1_800_000_000.0 + i, clip=b"RIFF" + b"c" * 20_000)
    await _fill_database(store)
    # Until the database's last page is used up, events still fit.
    for _ in range(100):
        held = await _add(store)
        if held.seq in store._unsaved:
            break
    assert held.seq in store._unsaved
    # Clips were deleted to make room before the event was held (here, deleting files frees
    # no database pages, so the retry failed too).
    files = list((tmp_path / "clips").glob("*.wav"))
    assert 0 < len(files) < 20
    await _free_database(store)
    await store.flush_unsaved()
    await store.close()


async def test_low_free_space_shrinks_clip_retention(tmp_path: Path, monkeypatch) -> None:
    """Below the free-space margin the oldest clips go first; with none left, new clips are
    not kept, and the storage state says so. Events are stored throughout."""
    store = await _open(tmp_path, min_free_mb=1)
    clips = tmp_path / "clips"

    def used() -> int:
        return sum(f.stat().st_size for f in clips.glob("*.wav"))

    # A disk of `size[0]` bytes holding nothing but the clips.
    size = [50 * 1024 * 1024]
    monkeypatch.setattr(store, "_free_bytes", lambda: size[0] - used())
    kept = [await _add(store, clip=b"RIFF" + b"k" * 100_000) for _ in range(3)]
    assert len(list(clips.glob("*.wav"))) == 3
    # The disk fills up from elsewhere: 100 kB over the margin are left.
    size[0] = used() + 1024 * 1024 + 100_000
    fresh = await _add(store, clip=b"RIFF" + b"n" * 150_000)
    names = sorted(p.name for p in (tmp_path / "clips").glob("*.wav"))
    assert f"{kept[0].seq}.wav" not in names  # the oldest gave way
    assert f"{fresh.seq}.wav" in names
    # Nothing can be freed any more: the new clip is not kept, the event is.
    monkeypatch.setattr(store, "_prune_for_space", lambda **kw: False)
    size[0] = used() + 1024 * 1024
    last = await _add(store, clip=b"RIFF" + b"z" * 10_000)
    assert not (tmp_path / "clips" / f"{last.seq}.wav").exists()
    assert (await store.events_after(fresh.rev))[0][0].seq == last.seq
    assert store.storage["ok"] is False and "margin" in store.storage["problem"]
    size[0] = 50 * 1024 * 1024
    await _add(store, clip=b"RIFF" + b"o" * 10)
    assert store.storage["ok"] is True
    await store.close()


async def test_nearly_full_disk_is_reported_before_any_write_fails(
    tmp_path: Path, monkeypatch
) -> None:
    """Free space under the margin is a storage problem at once (health, the WebSocket and
    Home Assistant's repair say so), before an event fails; it clears when space returns."""
    free = [10 * 1024 * 1024]
    monkeypatch.setattr(EventStore, "_free_bytes", lambda self: free[0])
    reports: list[dict] = []
    store = EventStore(tmp_path, min_free_mb=256, on_storage=reports.append)
    await store.open()
    await asyncio.sleep(0.05)
    assert store.storage["ok"] is False
    assert "under the 268 MB margin" in store.storage["problem"]
    assert reports and reports[-1]["ok"] is False
    free[0] = 2 * 1024 * 1024 * 1024
    await store.refresh_storage()
    await asyncio.sleep(0.05)
    assert store.storage["ok"] is True and reports[-1]["ok"] is True
    await store.close()
