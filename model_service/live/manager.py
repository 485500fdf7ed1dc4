"""All live sources: creating, updating, deleting and restoring them, and the limits that
keep their number and their stored events bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from model_service import metrics
from model_service.arrays import Array
from model_service.detection.service import Service
from model_service.live.hub import Hub
from model_service.live.runtime import SourceRuntime
from model_service.live.sounds import SoundBook
from model_service.live.sources import (
    SourceError,
    SourceSpec,
    check_mode,
    check_sensitivity,
    spec_from_config,
    spec_from_request,
    spec_from_saved,
)
from model_service.live.store import EventStore, StoredEvent, StoreError
from model_service.redaction import redact_text

_LOGGER = logging.getLogger(__name__)
MAX_SOURCES = 1000
PRUNE_INTERVAL = 600.0
# How often push sources are checked for a stalled stream (seconds).
WATCH_INTERVAL = 1.0
# How often the free space of the data dir's disk is looked at (statvfs, on the store thread).
STORAGE_CHECK_INTERVAL = 30.0


class StreamManager:
    """All live sources of the service, their persistence and the subscriber hub."""

    def __init__(
        self,
        service: Service,
        store: EventStore | None = None,
        *,
        read_timeout: float = 15.0,
        backoff_max: float = 60.0,
        subscriber_queue: int = 2048,
    ) -> None:
        """Create a stopped manager; `start` opens the store and starts the sources."""
        self.service = service
        self.hub = Hub()
        config = service.config
        self.store = store or EventStore(
            config.data_dir,
            clip_retention_hours=config.clip_retention_hours,
            clip_max_mb=config.clip_max_mb,
            min_free_mb=config.min_free_mb,
        )
        self.store.on_change = self._on_stored
        self.store.on_storage = self._on_storage
        self.read_timeout = read_timeout
        self.backoff_max = backoff_max
        self.subscriber_queue = subscriber_queue
        self.sources: dict[str, SourceRuntime] = {}
        # Open WebSocket responses, closed first at shutdown (owned by the live API routes).
        self.sockets: set[Any] = set()
        self._lock = asyncio.Lock()
        self._prune_task: asyncio.Task[None] | None = None
        self._storage_problem = False
        self.sounds = SoundBook(self.store.data_dir, on_change=self._on_sounds)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- start / stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, close events a crash left open, start config and saved sources."""
        await self.store.open()
        await self.sounds.load()
        metrics.WS_QUEUE_DEPTH.set_function(self.hub.queued)
        metrics.WS_QUEUE_BYTES.set_function(self.hub.queued_bytes)
        closed = await self.store.close_open_events()
        if closed:
            _LOGGER.warning(
                "%s events were still open from the last run; they were ended at their start",
                len(closed),
            )
        allowed = self.service.config.allowed_schemes
        specs: list[SourceSpec] = []
        taken: set[str] = set()
        for entry in self.service.config.sources:
            try:
                spec = spec_from_config(entry, allowed, taken)
            except SourceError as err:
                url = entry.get("url") if isinstance(entry, dict) else None
                shown = redact_text(repr(entry), url if isinstance(url, str) else None)
                _LOGGER.error("Source %s in the config file is skipped: %s", shown, err)
                continue
            taken.add(spec.id)
            specs.append(spec)
        by_id = {s.id: i for i, s in enumerate(specs)}
        for source_id, origin, data in await self.store.load_sources():
            if origin == "config":
                # Changes made through the API to a config source (name, sensitivity).
                if source_id in by_id:
                    i = by_id[source_id]
                    specs[i] = specs[i].with_changes(
                        name=data.get("name") or specs[i].name,
                        sensitivity=data.get("sensitivity", specs[i].sensitivity),
                        mode=check_mode(data.get("mode", specs[i].mode)),
                    )
                continue
            if source_id in taken:
                _LOGGER.error(
                    "Saved source %s is not started: the config file now declares that id",
                    source_id,
                )
                continue
            try:
                spec = spec_from_saved(source_id, data)
            except SourceError as err:
                _LOGGER.error("Saved source %s is skipped: %s", source_id, err)
                continue
            taken.add(spec.id)
            specs.append(spec)
        for spec in specs:
            runtime = SourceRuntime(spec, self)
            self.sources[spec.id] = runtime
            runtime.start()
        self._prune_task = asyncio.get_running_loop().create_task(self._prune_loop())
        _LOGGER.info("Live detection ready: %s sources", len(self.sources))

    async def stop(self) -> None:
        """Stop every source (ongoing events end) and the background tasks."""
        if self._prune_task is not None:
            self._prune_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prune_task
            self._prune_task = None
        await asyncio.gather(*(r.stop() for r in self.sources.values()), return_exceptions=True)
        for runtime in self.sources.values():
            # The registry is global: it must not keep this manager's sources alive.
            runtime.forget_metrics()

    async def close(self) -> None:
        """Close the store (after `stop`)."""
        await self.store.close()

    async def _prune_loop(self) -> None:
        pruned = checked = 0.0
        while True:
            now = time.monotonic()
            for runtime in list(self.sources.values()):
                runtime.check_stalled(now)
            with contextlib.suppress(StoreError):
                # Events held while the disk was full are written as soon as it allows.
                await self.store.flush_unsaved()
                if now - checked >= STORAGE_CHECK_INTERVAL:
                    checked = now
                    await self.store.refresh_storage()
            if now - pruned >= PRUNE_INTERVAL:
                pruned = now
                with contextlib.suppress(StoreError):  # logged by the store
                    await self.store.prune_clips()
                for runtime in list(self.sources.values()):
                    await runtime.save_usual()
            await asyncio.sleep(WATCH_INTERVAL)

    def _on_storage(self, status: dict[str, Any]) -> None:
        if status["ok"]:
            if self._storage_problem:
                _LOGGER.warning("Storage is fine again")
        else:
            _LOGGER.error("Storage problem: %s", status["problem"])
        self._storage_problem = not status["ok"]
        self.hub.publish({"type": "storage", "storage": status})

    def _on_sounds(self) -> None:
        # Every source detects the ready sounds from its next hop on.
        for runtime in list(self.sources.values()):
            task = asyncio.get_running_loop().create_task(runtime.refresh_categories())
            self._tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)
        self.hub.publish({"type": "sounds", "sounds": self.sounds.describe()})

    def _on_stored(self, event: StoredEvent) -> None:
        # On the loop, in rev order (see EventStore._notify).
        self.hub.publish({"type": "event", "event": event.as_dict()}, rev=event.rev)

    # -- sources -------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        """Every source's wire form, in creation order."""
        return [r.as_dict() for r in self.sources.values()]

    def get(self, source_id: str) -> SourceRuntime:
        """A running source; KeyError for an unknown id."""
        return self.sources[source_id]

    async def create(self, body: Any) -> SourceRuntime:
        """Create, save and start an API source from a POST body; SourceError when invalid."""
        async with self._lock:
            if len(self.sources) >= MAX_SOURCES:
                raise SourceError(f"there are already {MAX_SOURCES} sources")
            config = self.service.config
            spec = spec_from_request(
                body, config.allowed_schemes, set(self.sources), hosts=config.source_hosts
            )
            await self.store.save_source(spec.id, "api", spec.to_saved())
            runtime = SourceRuntime(spec, self)
            self.sources[spec.id] = runtime
            runtime.start()
        _LOGGER.info("Source %s created (%s %s)", spec.id, spec.kind, spec.wire_url() or "")
        self.hub.publish({"type": "source", "source": runtime.as_dict()})
        return runtime

    async def update(self, source_id: str, body: Any) -> SourceRuntime:
        """Change a source's name, sensitivity and/or mode (saved); KeyError / SourceError."""
        runtime = self.sources[source_id]
        if not isinstance(body, dict) or not body:
            raise SourceError(
                'the body must be a JSON object with "name", "sensitivity" and/or "mode"'
            )
        unknown = sorted(set(body) - {"name", "sensitivity", "mode"})
        if unknown:
            raise SourceError(
                f"only name, sensitivity and mode can be changed, not {', '.join(unknown)}"
            )
        changes: dict[str, Any] = {}
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip() or len(name) > 100:
                raise SourceError("name must be a non-empty string of at most 100 characters")
            changes["name"] = name.strip()
        if "sensitivity" in body:
            changes["sensitivity"] = check_sensitivity(body["sensitivity"])
        if "mode" in body:
            changes["mode"] = check_mode(body["mode"])
        async with self._lock:
            spec = runtime.spec.with_changes(**changes)
            if spec.persistent:
                await self.store.save_source(spec.id, "api", spec.to_saved())
            else:
                await self.store.save_source(
                    spec.id,
                    "config",
                    {"name": spec.name, "sensitivity": spec.sensitivity, "mode": spec.mode},
                )
            runtime.spec = spec
            runtime.tracker.set_sensitivity(runtime.sensitivity, runtime.mode)
        self.hub.publish({"type": "source", "source": runtime.as_dict()})
        return runtime

    async def delete(self, source_id: str) -> None:
        """Stop and remove an API source; KeyError when unknown, SourceError for config ones."""
        runtime = self.sources[source_id]
        if not runtime.spec.persistent:
            raise SourceError(f"source {source_id} is declared in the config file; remove it there")
        async with self._lock:
            if self.sources.get(source_id) is not runtime:
                raise KeyError(source_id)
            del self.sources[source_id]
            await self.store.delete_source(source_id)
        await runtime.stop()
        await runtime.forget_usual()
        runtime.forget_metrics()
        _LOGGER.info("Source %s removed", source_id)
        self.hub.publish({"type": "source_removed", "source": {"id": source_id}})

    def recent_audio(self, source_id: str, seconds: float) -> Array:
        """The last `seconds` (up to 30 s) of a source's audio, float32 at 16 kHz.

        KeyError for an unknown source; shorter (or empty) when less has arrived. During a
        run it is the current run's audio; after a run ends it is that run's last audio.
        """
        runtime = self.sources[source_id]
        return runtime.recent(min(max(0.0, float(seconds)), 30.0))
