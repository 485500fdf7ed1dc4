"""Event log, clips and API-made sources: SQLite in the data dir, used by one thread off the loop.

Every change to an event (its start, its end) takes the next value of one counter that never
goes back, not even across restarts. An event's `seq` is the counter value it got when it
started and never changes; its `rev` is the value of its latest change. A subscriber that
remembers the highest `rev` it has seen and asks for `after=<that>` gets every event that
started or changed since, each once in its current form.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import logging
import os
from pathlib import Path
import sqlite3
import time
from typing import Any, TypeVar
import uuid

from model_service import metrics
from model_service.modes import is_intrusion

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DB_NAME = "events.db"
CLIP_DIR = "clips"

T = TypeVar("T")

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    rev INTEGER NOT NULL UNIQUE,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    category TEXT NOT NULL,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    start_ts REAL NOT NULL,
    end_ts REAL,
    level_dbfs REAL NOT NULL,
    clip_bytes INTEGER NOT NULL DEFAULT 0,
    clip_at REAL
);
CREATE INDEX events_source_rev ON events (source, rev);
CREATE INDEX events_category_rev ON events (category, rev);
CREATE INDEX events_clip_at ON events (clip_at) WHERE clip_bytes > 0;
CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL
);
"""

# The mode the source was in when the event started (modes.py); older events were "home".
_SCHEMA_V2 = "ALTER TABLE events ADD COLUMN mode TEXT NOT NULL DEFAULT 'home'"

# Schema changes: version -> SQL that migrates from the version before it.
_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}


# Event numbers are SQLite INTEGERs: a request for a larger one names no event.
MAX_SEQ = 2**63 - 1
# Events detected while the database cannot be written are kept (and delivered live) until it
# can; past this many the oldest are given up, each with an error in the log.
MAX_UNSAVED = 10_000

_UPSERT = (
    "INSERT INTO events (seq, rev, id, source, category, label, score, start_ts, end_ts, "
    "level_dbfs, mode, clip_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) "
    "ON CONFLICT(seq) DO UPDATE SET rev = excluded.rev, end_ts = excluded.end_ts, "
    "score = excluded.score, label = excluded.label, level_dbfs = excluded.level_dbfs"
)


class StoreError(OSError):
    """The event database cannot be used; the message says why and what to do.

    An OSError on purpose: like a data dir that cannot be written, it is a problem of the
    machine the service runs on, and the command line reports it as "Cannot start: ...".
    """


def iso_utc(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (`2026-11-22T10:00:03.500+00:00`)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class StoredEvent:
    """One row of the event log; times are epoch seconds, `end` is None while ongoing."""

    seq: int
    rev: int
    id: str
    source: str
    category: str
    label: str
    score: float
    start: float
    end: float | None
    level_dbfs: float
    clip_bytes: int = 0
    mode: str = "home"

    def as_dict(self) -> dict[str, Any]:
        """Wire form (docs/api.md, Events)."""
        return {
            "seq": self.seq,
            "rev": self.rev,
            "id": self.id,
            "source": self.source,
            "category": self.category,
            "label": self.label,
            "score": round(self.score, 4),
            "start": iso_utc(self.start),
            "end": None if self.end is None else iso_utc(self.end),
            "duration": None if self.end is None else round(max(0.0, self.end - self.start), 3),
            "level_dbfs": round(self.level_dbfs, 1),
            "has_clip": self.clip_bytes > 0,
            "mode": self.mode,
            "intrusion": is_intrusion(self.mode, self.category),
        }


_SELECT = (
    "SELECT seq, rev, id, source, category, label, score, start_ts, end_ts, level_dbfs, "
    "clip_bytes, mode FROM events"
)
_SELECT_SEQ = _SELECT + " WHERE seq = ?"
_INSERT = (
    "INSERT INTO events (seq, rev, id, source, category, label, score, start_ts, end_ts, "
    "level_dbfs, mode, clip_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
)


def _values(event: StoredEvent) -> tuple[Any, ...]:
    """An event's columns in the order of _INSERT and _UPSERT."""
    return (
        event.seq,
        event.rev,
        event.id,
        event.source,
        event.category,
        event.label,
        event.score,
        event.start,
        event.end,
        event.level_dbfs,
        event.mode,
    )


def _row_event(row: tuple[Any, ...]) -> StoredEvent:
    return StoredEvent(*row)


def _explain(err: sqlite3.Error, path: Path) -> str:
    """A message a user can act on for a database that cannot be opened or written."""
    text = str(err)
    if "locked" in text or "busy" in text:
        return (
            f"the event database {path} is locked: another service process is probably using "
            "the same data dir. Stop it, or give this one its own --data-dir"
        )
    if isinstance(err, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    ):
        return (
            f"the event database {path} is corrupt ({text}). It was left untouched: move it "
            "aside (keep it if its events matter) and start again to begin a new one"
        )
    return f"the event database {path} cannot be used: {text}"


class EventStore:
    """The persistent event log, clip files and API-made sources.

    All SQLite work runs in one dedicated thread with its own connection, so the event loop
    never waits on the disk and writes are naturally serialised. The connection holds the
    database exclusively: a second service on the same data dir is refused at start instead
    of interleaving writes with this one.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        clip_retention_hours: float = 72.0,
        clip_max_mb: float = 500.0,
        min_free_mb: float = 256.0,
        on_change: Callable[[StoredEvent], None] | None = None,
        on_storage: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Create a closed store; `on_change` is called on the loop, in rev order, after each commit."""
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.clip_dir = self.data_dir / CLIP_DIR
        self.clip_retention = clip_retention_hours * 3600.0
        self.clip_max_bytes = int(clip_max_mb * 1024 * 1024)
        self.min_free_bytes = int(min_free_mb * 1024 * 1024)
        self.on_change = on_change
        # Called on the loop whenever `storage()` changes.
        self.on_storage = on_storage
        # Events (latest form, by seq) that could not be written yet; see `flush_unsaved`.
        self._unsaved: dict[int, StoredEvent] = {}
        self._write_error: str | None = None
        self._low_space = False
        self._reported: dict[str, Any] | None = None
        # The latest storage state (`_storage`), for `/v1/health` and the WebSocket.
        self.storage: dict[str, Any] = {
            "ok": True,
            "problem": None,
            "free_mb": None,
            "unsaved_events": 0,
        }
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._counter = 0
        self._clip_total = 0
        self._pending = 0

    @property
    def last_rev(self) -> int:
        """The highest counter value handed out so far (0 for an empty log)."""
        return self._counter

    # -- thread plumbing -------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError("the event store is not open")
        loop = asyncio.get_running_loop()
        self._pending += 1
        metrics.STORE_QUEUE.set(self._pending)
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        finally:
            self._pending -= 1
            metrics.STORE_QUEUE.set(self._pending)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the event store is not open")
        return self._conn

    def _notify(self, event: StoredEvent) -> None:
        # Called in the writer thread right after a commit. call_soon_threadsafe keeps FIFO
        # order, so subscribers see changes in exactly the order their revs were given.
        if self.on_change is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_change, event)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one transaction; map SQLite failures to a StoreError with a clear log line."""
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                # A COMMIT that failed (the disk is full) leaves the transaction open.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            message = _explain(err, self.path)
            _LOGGER.error("Event database write failed: %s", message)
            metrics.STORE_ERRORS.inc()
            raise StoreError(message) from err
        return result

    # -- open / close ----------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database, check it and migrate it; raise StoreError if unusable."""
        if self._executor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-store")
        try:
            await self._call(self._open_sync)
        except BaseException:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True)
            raise

    def _open_sync(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.clip_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the data dir {self.data_dir}: {err.strerror}") from err
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: transactions are explicit (BEGIN/COMMIT in _write).
            conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None)
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: events are rare and each one matters more than a millisecond of fsync.
            conn.execute("PRAGMA synchronous=FULL")
            # Take the exclusive lock now, so a second process fails here and not mid-write.
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("COMMIT")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else '?'}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the event database {self.path} has schema version {version}, newer than "
                    f"this service understands ({SCHEMA_VERSION}); upgrade the service or use "
                    "another --data-dir"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute("BEGIN IMMEDIATE")
                # Statement by statement: executescript() would commit behind our back.
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
                _LOGGER.info("Event database %s at schema version %s", self.path, target)
            row = conn.execute("SELECT value FROM meta WHERE key = 'counter'").fetchone()
            counter = int(row[0]) if row else 0
            top = conn.execute("SELECT COALESCE(MAX(rev), 0) FROM events").fetchone()[0]
            self._counter = max(counter, int(top))
            self._clip_total = int(
                conn.execute("SELECT COALESCE(SUM(clip_bytes), 0) FROM events").fetchone()[0]
            )
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        except sqlite3.Error as err:
            if conn is not None:
                conn.close()
            message = _explain(err, self.path)
            _LOGGER.error("Cannot open the event database: %s", message)
            raise StoreError(message) from err
        self._conn = conn
        self._sweep_orphan_clips()
        self._report_storage()

    async def close(self) -> None:
        """Close the database (waits for queued writes)."""
        if self._executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- events ----------------------------------------------------------------------------

    def _next(self, conn: sqlite3.Connection) -> int:
        value = self._counter + 1
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('counter', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(value),),
        )
        return value

    async def add_event(
        self,
        *,
        source: str,
        category: str,
        label: str,
        score: float,
        start: float,
        level_dbfs: float,
        end: float | None = None,
        clip: bytes | None = None,
        mode: str = "home",
    ) -> StoredEvent:
        """Store a new event (its start); its seq and rev are the next counter value."""
        return await self._call(
            self._add_sync, source, category, label, score, start, level_dbfs, end, clip, mode
        )

    def _add_sync(
        self,
        source: str,
        category: str,
        label: str,
        score: float,
        start: float,
        level_dbfs: float,
        end: float | None,
        clip: bytes | None,
        mode: str = "home",
    ) -> StoredEvent:
        rev = self._counter + 1
        event = StoredEvent(
            seq=rev,
            rev=rev,
            id=uuid.uuid4().hex,
            source=source,
            category=category,
            label=label,
            score=float(score),
            start=float(start),
            end=None if end is None else float(end),
            level_dbfs=float(level_dbfs),
            mode=str(mode),
        )

        def tx(conn: sqlite3.Connection) -> None:
            self._next(conn)  # the counter's next value: this event's rev
            conn.execute(_INSERT, _values(event))

        try:
            self._write_making_room(tx)
        except StoreError as err:
            # Not stored, but never lost: delivered live now, written when the disk allows.
            self._hold(event, err)
            return event
        self._counter = event.rev
        if clip:
            self._store_clip(event, clip)
        self._notify(event)
        return event

    async def update_event(
        self,
        seq: int,
        *,
        end: float | None = None,
        score: float | None = None,
        label: str | None = None,
        level_dbfs: float | None = None,
        clip: bytes | None = None,
    ) -> StoredEvent:
        """Change an event (typically its end); it keeps its seq and gets the next rev."""
        return await self._call(self._update_sync, seq, end, score, label, level_dbfs, clip)

    def _update_sync(
        self,
        seq: int,
        end: float | None,
        score: float | None,
        label: str | None,
        level_dbfs: float | None,
        clip: bytes | None,
    ) -> StoredEvent:
        def tx(conn: sqlite3.Connection) -> StoredEvent:
            row = conn.execute(_SELECT_SEQ, (seq,)).fetchone()
            if row is None:
                raise KeyError(seq)
            event = _row_event(row)
            event.rev = self._next(conn)
            self._change(event, end, score, label, level_dbfs)
            conn.execute(
                "UPDATE events SET rev = ?, end_ts = ?, score = ?, label = ?, level_dbfs = ? "
                "WHERE seq = ?",
                (event.rev, event.end, event.score, event.label, event.level_dbfs, seq),
            )
            return event

        held = self._unsaved.get(seq)
        if held is not None:
            self._change(held, end, score, label, level_dbfs)
            held.rev = self._counter + 1
            self._hold(held, None)
            return held
        try:
            event = self._write_making_room(tx)
        except StoreError as err:
            row = self._db().execute(_SELECT_SEQ, (seq,)).fetchone()
            if row is None:
                raise KeyError(seq) from err
            event = _row_event(row)
            self._change(event, end, score, label, level_dbfs)
            event.rev = self._counter + 1
            self._hold(event, err)
            return event
        self._counter = event.rev
        if clip:
            self._store_clip(event, clip)
        self._notify(event)
        return event

    @staticmethod
    def _change(
        event: StoredEvent,
        end: float | None,
        score: float | None,
        label: str | None,
        level_dbfs: float | None,
    ) -> None:
        if end is not None:
            event.end = float(end)
        if score is not None:
            event.score = float(score)
        if label is not None:
            event.label = label
        if level_dbfs is not None:
            event.level_dbfs = float(level_dbfs)

    # -- when the disk is full -------------------------------------------------------------

    def _write_making_room(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`_write`, and once more after deleting clips if the disk was full: clips give way
        before events."""
        try:
            return self._write(fn)
        except StoreError:
            if not self._prune_for_space(force=True):
                raise
        return self._write(fn)

    def _hold(self, event: StoredEvent, err: StoreError | None) -> None:
        """Keep an event that could not be written, and deliver it live like a stored one."""
        self._counter = event.rev
        self._unsaved.pop(event.seq, None)
        self._unsaved[event.seq] = event
        if err is not None:
            self._write_error = str(err)
            _LOGGER.error(
                "Event %s (%s on %s) is delivered but not stored yet: %s",
                event.seq,
                event.category,
                event.source,
                err,
            )
        while len(self._unsaved) > MAX_UNSAVED:
            seq, lost = next(iter(self._unsaved.items()))
            del self._unsaved[seq]
            _LOGGER.error(
                "Event %s (%s on %s) was delivered but is given up: %s events wait to be stored",
                seq,
                lost.category,
                lost.source,
                MAX_UNSAVED,
            )
        metrics.STORE_UNSAVED.set(len(self._unsaved))
        self._notify(event)
        self._report_storage()

    async def flush_unsaved(self) -> int:
        """Write the events held in memory, if the disk takes them now; return how many."""
        if not self._unsaved:
            return 0
        return await self._call(self._flush_sync)

    def _flush_sync(self) -> int:
        if not self._unsaved:
            return 0
        events = list(self._unsaved.values())
        top = max(e.rev for e in events)

        def tx(conn: sqlite3.Connection) -> None:
            conn.executemany(_UPSERT, [_values(e) for e in events])
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('counter', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), "
                "CAST(excluded.value AS INTEGER))",
                (str(top),),
            )

        try:
            self._write_making_room(tx)
        except StoreError:
            return 0
        # All on this thread: nothing was held meanwhile.
        self._unsaved.clear()
        metrics.STORE_UNSAVED.set(0)
        self._write_error = None
        _LOGGER.warning(
            "%s events kept in memory while the disk was full are now stored", len(events)
        )
        self._report_storage()
        return len(events)

    def _free_bytes(self) -> int | None:
        try:
            st = os.statvfs(self.data_dir)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _prune_for_space(self, *, force: bool = False, need: int = 0) -> bool:
        """Delete the oldest clips until the disk has `min_free_bytes` (+ `need`) free, or
        (`force`: the disk is full now) at least a tenth of the clips; True if any went."""
        free = self._free_bytes()
        wanted = self.min_free_bytes + need
        if not force and (free is None or free >= wanted):
            return False
        try:
            rows = (
                self._db()
                .execute("SELECT seq, clip_bytes FROM events WHERE clip_bytes > 0 ORDER BY seq")
                .fetchall()
            )
        except sqlite3.Error:
            return False
        if not rows:
            return False
        doomed: list[tuple[int, int]] = []
        freed = 0
        minimum = max(1, len(rows) // 10) if force else 0
        for seq, size in rows:
            if len(doomed) >= minimum and free is not None and free + freed >= wanted:
                break
            doomed.append((seq, size))
            freed += size
        self._delete_clips(doomed)
        self._clip_total = max(0, self._clip_total - freed)
        _LOGGER.warning(
            "Deleted the %s oldest clips (%.1f MB): the data dir's disk has too little space",
            len(doomed),
            freed / 1e6,
        )
        return True

    def _delete_clips(self, doomed: list[tuple[int, int]]) -> None:
        for seq, _ in doomed:
            try:
                self._clip_path(seq).unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                _LOGGER.warning("Cannot delete clip of event %s: %s", seq, err.strerror)

        def tx(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE events SET clip_bytes = 0, clip_at = NULL WHERE seq = ?",
                [(seq,) for seq, _ in doomed],
            )

        # Deleting rows' clip references frees pages; if even this cannot be written, the
        # files are gone anyway and the orphan sweep at the next start tidies the rows.
        with contextlib.suppress(StoreError):
            self._write(tx)

    def _storage(self) -> dict[str, Any]:
        """The state of the data dir's storage (on the store's thread: statvfs can block)."""
        free = self._free_bytes()
        problem = None
        if self._unsaved:
            problem = (
                f"{len(self._unsaved)} events could not be written ({self._write_error}); "
                "they are kept in memory until they can be. Free space on that disk"
            )
        elif self._low_space or (free is not None and free < self.min_free_bytes):
            # Known before any write fails: the disk is nearly full, clips are not kept and
            # events will not fit for long.
            problem = (
                f"the disk of {self.data_dir} has {(free or 0) / 1e6:.0f} MB free, under the "
                f"{self.min_free_bytes / 1e6:.0f} MB margin (min_free_mb): new clips are not "
                "kept, and events cannot be stored once it is full. Free space on that disk"
            )
        return {
            "ok": problem is None,
            "problem": problem,
            "free_mb": None if free is None else round(free / 1e6, 1),
            "unsaved_events": len(self._unsaved),
        }

    def _report_storage(self) -> None:
        status = self._storage()
        self.storage = status
        # Said again when the kind of problem changes, not with every event held.
        key = {"ok": status["ok"], "unsaved": bool(self._unsaved)}
        if key == self._reported:
            return
        self._reported = key
        if self.on_storage is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_storage, status)

    async def refresh_storage(self) -> None:
        """Look at the free space again (the disk fills and empties without our writes)."""
        await self._call(self._report_storage)

    async def set_clip(self, seq: int, wav: bytes) -> None:
        """Replace an event's clip (no new rev: the event itself did not change)."""
        await self._call(self._set_clip_sync, seq, wav)

    def _set_clip_sync(self, seq: int, wav: bytes) -> None:
        if seq in self._unsaved:
            return  # no room for the event: none for its clip either
        row = self._db().execute(_SELECT_SEQ, (seq,)).fetchone()
        if row is not None:
            self._store_clip(_row_event(row), wav)

    def _clip_path(self, seq: int) -> Path:
        return self.clip_dir / f"{seq}.wav"

    def _store_clip(self, event: StoredEvent, wav: bytes) -> None:
        """Write a clip file atomically, then record it; prune if over the size cap."""
        path = self._clip_path(event.seq)
        tmp = path.with_suffix(".tmp")
        free = self._free_bytes()
        if free is not None and free - len(wav) < self.min_free_bytes:
            # Below the margin the oldest clips go first; without any left, this one does.
            self._prune_for_space(need=len(wav))
            free = self._free_bytes()
            low = free is not None and free - len(wav) < self.min_free_bytes
            if low != self._low_space:
                self._low_space = low
                self._report_storage()
            if low:
                _LOGGER.warning(
                    "The clip of event %s is not kept: the disk of %s is nearly full",
                    event.seq,
                    self.data_dir,
                )
                return
        elif self._low_space:
            self._low_space = False
            self._report_storage()
        try:
            tmp.write_bytes(wav)
            tmp.replace(path)
        except OSError as err:
            # The event itself is stored; a clip that cannot be written is logged, not fatal.
            _LOGGER.error("Cannot write clip %s: %s", path, err.strerror)
            metrics.STORE_ERRORS.inc()
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        previous = event.clip_bytes

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE events SET clip_bytes = ?, clip_at = ? WHERE seq = ?",
                (len(wav), time.time(), event.seq),
            )

        try:
            self._write(tx)
        except StoreError:
            return
        event.clip_bytes = len(wav)
        self._clip_total += len(wav) - previous
        if self._clip_total > self.clip_max_bytes:
            self._prune_sync()

    def _get_sync(self, seq: int) -> StoredEvent | None:
        if seq in self._unsaved:
            return self._unsaved[seq]
        row = self._db().execute(_SELECT_SEQ, (seq,)).fetchone()
        return None if row is None else _row_event(row)

    async def events_after(
        self,
        after: int = 0,
        *,
        limit: int | None = None,
        source: str | None = None,
        category: str | None = None,
    ) -> tuple[list[StoredEvent], int]:
        """Events whose rev is above `after`, in rev order; also the counter at query time."""
        return await self._call(self._after_sync, after, limit, source, category)

    def _after_sync(
        self, after: int, limit: int | None, source: str | None, category: str | None
    ) -> tuple[list[StoredEvent], int]:
        query = _SELECT + " WHERE rev > ?"
        params: list[Any] = [after]
        if source is not None:
            query += " AND source = ?"
            params.append(source)
        if category is not None:
            query += " AND category = ?"
            params.append(category)
        query += " ORDER BY rev"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        try:
            rows = self._db().execute(query, params).fetchall()
        except sqlite3.Error as err:
            message = _explain(err, self.path)
            _LOGGER.error("Event database read failed: %s", message)
            metrics.STORE_ERRORS.inc()
            raise StoreError(message) from err
        events = [_row_event(r) for r in rows]
        if self._unsaved:
            held = [
                e
                for e in self._unsaved.values()
                if e.rev > after
                and (source is None or e.source == source)
                and (category is None or e.category == category)
            ]
            events = sorted(
                [e for e in events if e.seq not in self._unsaved] + held, key=lambda e: e.rev
            )
            if limit is not None:
                events = events[:limit]
        return events, self._counter

    async def close_open_events(self, end: float | None = None) -> list[StoredEvent]:
        """End events left ongoing by a crash (end = their start unless `end` is given)."""
        return await self._call(self._close_open_sync, end)

    def _close_open_sync(self, end: float | None) -> list[StoredEvent]:
        rows = self._db().execute("SELECT seq FROM events WHERE end_ts IS NULL").fetchall()
        closed = []
        for (seq,) in rows:
            event = self._get_sync(seq)
            if event is None:
                continue
            closed.append(
                self._update_sync(seq, max(event.start, end or event.start), None, None, None, None)
            )
        return closed

    # -- clips -----------------------------------------------------------------------------

    async def get_clip(self, seq: int) -> bytes | None:
        """The WAV clip of an event, or None when it has none or it expired (async)."""
        if not 0 < seq <= MAX_SEQ:
            return None  # no event has that number (and SQLite could not even look it up)
        return await self._call(self._get_clip_sync, seq)

    def _get_clip_sync(self, seq: int) -> bytes | None:
        # On the store's own thread: pruning unlinks clips there, so the read cannot race it.
        event = self._get_sync(seq)
        if event is None or event.clip_bytes <= 0:
            return None
        try:
            return self._clip_path(seq).read_bytes()
        except FileNotFoundError:
            return None

    async def prune_clips(self) -> int:
        """Delete clips past the retention time or over the size cap; return how many."""
        return await self._call(self._prune_sync)

    def _prune_sync(self) -> int:
        conn = self._db()
        cutoff = time.time() - self.clip_retention
        doomed = [
            (seq, size)
            for seq, size in conn.execute(
                "SELECT seq, clip_bytes FROM events WHERE clip_bytes > 0 AND clip_at < ?",
                (cutoff,),
            )
        ]
        total = self._clip_total - sum(size for _, size in doomed)
        if total > self.clip_max_bytes:
            # Oldest events first until under the cap.
            old = {seq for seq, _ in doomed}
            for seq, size in conn.execute(
                "SELECT seq, clip_bytes FROM events WHERE clip_bytes > 0 ORDER BY seq"
            ).fetchall():
                if total <= self.clip_max_bytes:
                    break
                if seq in old:
                    continue
                doomed.append((seq, size))
                total -= size
        if doomed:
            self._delete_clips(doomed)
            self._clip_total = max(0, total)
            _LOGGER.debug("Pruned %s clips", len(doomed))
        # Below the free-space margin, retention shrinks: the oldest clips go.
        self._prune_for_space()
        self._report_storage()
        return len(doomed)

    def _sweep_orphan_clips(self) -> None:
        """Remove clip files the log does not know (a crash between file and row)."""
        known = {
            seq for (seq,) in self._db().execute("SELECT seq FROM events WHERE clip_bytes > 0")
        }
        try:
            names = os.listdir(self.clip_dir)
        except OSError:
            return
        for name in names:
            stem, _, ext = name.partition(".")
            if ext in ("wav", "tmp") and not (
                ext == "wav" and stem.isdigit() and int(stem) in known
            ):
                with contextlib.suppress(OSError):
                    (self.clip_dir / name).unlink()

    # -- sources ---------------------------------------------------------------------------

    async def load_sources(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Saved sources as (id, origin, spec), oldest first."""
        return await self._call(self._load_sources_sync)

    def _load_sources_sync(self) -> list[tuple[str, str, dict[str, Any]]]:
        rows = (
            self._db()
            .execute("SELECT id, origin, spec FROM sources ORDER BY created, id")
            .fetchall()
        )
        out = []
        for source_id, origin, spec in rows:
            try:
                data = json.loads(spec)
            except ValueError:
                _LOGGER.error("Saved source %s is unreadable and was skipped", source_id)
                continue
            out.append((source_id, origin, data))
        return out

    async def save_source(self, source_id: str, origin: str, spec: dict[str, Any]) -> None:
        """Create or replace a saved source."""
        text = json.dumps(spec, sort_keys=True)

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO sources (id, origin, spec, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET origin = excluded.origin, spec = excluded.spec",
                (source_id, origin, text, time.time()),
            )

        await self._call(self._write, tx)

    async def delete_source(self, source_id: str) -> None:
        """Forget a saved source (its events stay in the log)."""

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sources WHERE id = ?", (source_id,))

        await self._call(self._write, tx)
