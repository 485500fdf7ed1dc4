"""Taught sounds: kept in the data dir, detected on every live source as `custom:<slug>`.

A sound is made with a name, then taught one example at a time (from a source's recent
audio, a stored event's clip or an uploaded file). From `MIN_EXAMPLES` examples on it is
ready: its matcher (`model_service.taught`) is built and every live source scores it. Each
sound lives in `sounds/<slug>/` of the data dir: `sound.json` (its name and how many
examples it has) and its examples as 16 kHz WAV files, so it survives restarts and can be
taught again. Examples stay on disk; memory holds only the matchers' templates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import json
import logging
from pathlib import Path
import re
import shutil
import threading
from typing import Any

import numpy as np

from model_service.arrays import Array, Samples
from model_service.audio import to_wav_bytes
from model_service.live.sources import slugify, unique_id
from model_service.taught import (
    MAX_EXAMPLES,
    MAX_SECONDS,
    MIN_EXAMPLES,
    Matcher,
    TeachError,
    template_of,
)

_LOGGER = logging.getLogger(__name__)

PREFIX = "custom:"
DIR = "sounds"
MAX_SOUNDS = 32
MAX_NAME = 100
KIND = "taught"
_ID = re.compile(r"^custom:[a-z0-9_]{1,48}$")


class SoundError(ValueError):
    """A request about taught sounds that cannot be done; the message says why."""


class SoundConflictError(SoundError):
    """The request conflicts with the sound's state (too many examples, too many sounds)."""


@dataclass(slots=True)
class TaughtSound:
    """A sound being taught or ready to be detected."""

    slug: str
    name: str
    examples: int = 0  # kept on disk only: memory holds the matcher's templates
    matcher: Matcher | None = None

    @property
    def id(self) -> str:
        """The category id sources report (`custom:<slug>`)."""
        return PREFIX + self.slug

    @property
    def ready(self) -> bool:
        """Whether it has enough examples to be detected."""
        return self.matcher is not None

    def as_dict(self) -> dict[str, Any]:
        """Wire form (docs/api.md, Taught sounds)."""
        return {
            "id": self.id,
            "name": self.name,
            "examples": self.examples,
            "ready": self.ready,
        }


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SoundError("name must be a non-empty string")
    if len(name) > MAX_NAME:
        raise SoundError(f"name is longer than {MAX_NAME} characters")
    return name.strip()


def _read_wav(path: Path) -> Array:
    import soundfile as sf

    audio, rate = sf.read(path, dtype="float32", always_2d=False)
    if rate != 16000 or audio.ndim != 1:
        raise ValueError(f"{path.name} is not 16 kHz mono")
    return np.asarray(audio, dtype=np.float32)


def _names(count: int) -> list[str]:
    """The file names of a sound's first `count` examples."""
    return [f"example_{i}.wav" for i in range(1, count + 1)]


class SoundBook:
    """Every taught sound of the service; changes are saved, then announced."""

    def __init__(self, data_dir: Path, on_change: Callable[[], None] | None = None) -> None:
        """Sounds kept under `data_dir`; `on_change` is called (on the loop) after a change."""
        self.root = Path(data_dir) / DIR
        self.sounds: dict[str, TaughtSound] = {}
        self.on_change = on_change
        self._lock = asyncio.Lock()
        self._matchers = threading.Lock()

    # -- loading and listing -------------------------------------------------------------

    async def load(self) -> None:
        """Read the taught sounds from the data dir (a damaged one is skipped, logged)."""
        self.sounds = await asyncio.to_thread(self._load_sync)
        if self.sounds:
            _LOGGER.info("Taught sounds: %s", ", ".join(s.name for s in self.sounds.values()))

    def _load_sync(self) -> dict[str, TaughtSound]:
        found: dict[str, TaughtSound] = {}
        if not self.root.is_dir():
            return found
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or slugify(folder.name) != folder.name:
                continue
            try:
                meta = json.loads((folder / "sound.json").read_text(encoding="utf-8"))
                examples = [_read_wav(folder / name) for name in _names(int(meta["examples"]))]
                sound = TaughtSound(folder.name, _check_name(meta.get("name")), len(examples))
                if len(examples) >= MIN_EXAMPLES:
                    sound.matcher = Matcher.teach(examples)
            except (OSError, ValueError) as err:
                _LOGGER.error("The taught sound in %s is skipped: %s", folder, err)
                continue
            found[sound.slug] = sound
        return found

    def describe(self) -> list[dict[str, Any]]:
        """Every sound's wire form, by name."""
        return [s.as_dict() for s in sorted(self.sounds.values(), key=lambda s: s.name.lower())]

    def get(self, sound_id: str) -> TaughtSound:
        """A sound by its id (`custom:<slug>`); KeyError when there is none."""
        if not _ID.match(sound_id):
            raise KeyError(sound_id)
        return self.sounds[sound_id.removeprefix(PREFIX)]

    def ready(self) -> list[TaughtSound]:
        """The sounds sources detect."""
        return [s for s in self.sounds.values() if s.ready]

    def categories(self) -> list[dict[str, Any]]:
        """The ready sounds as `/v1/info` categories."""
        return [
            {"id": s.id, "name": s.name, "labels": [], "kind": KIND}
            for s in sorted(self.ready(), key=lambda s: s.name.lower())
        ]

    # -- changes ---------------------------------------------------------------------------

    async def create(self, body: Any) -> TaughtSound:
        """Make a sound from `{"name": ...}` (no examples yet)."""
        if not isinstance(body, dict) or set(body) - {"name"}:
            raise SoundError('the body must be a JSON object with only "name"')
        name = _check_name(body.get("name"))
        async with self._lock:
            if len(self.sounds) >= MAX_SOUNDS:
                raise SoundConflictError(f"there are already {MAX_SOUNDS} taught sounds")
            sound = TaughtSound(unique_id(name, set(self.sounds)), name)
            await asyncio.to_thread(self._save, sound)
            self.sounds[sound.slug] = sound
        self._changed()
        return sound

    async def rename(self, sound_id: str, body: Any) -> TaughtSound:
        """Change a sound's name (its id stays)."""
        sound = self.get(sound_id)
        if not isinstance(body, dict) or set(body) != {"name"}:
            raise SoundError('the body must be a JSON object with only "name"')
        name = _check_name(body["name"])
        async with self._lock:
            sound.name = name
            await asyncio.to_thread(self._save, sound)
        self._changed()
        return sound

    async def add_example(self, sound_id: str, audio: Samples) -> TaughtSound:
        """Add one example (float32, 16 kHz) and teach the sound again once it has enough."""
        sound = self.get(sound_id)
        samples = np.asarray(audio, dtype=np.float32)
        if samples.size > MAX_SECONDS * 16000:
            raise SoundError(f"an example is at most {MAX_SECONDS:.0f} s long")
        async with self._lock:
            if sound.examples >= MAX_EXAMPLES:
                raise SoundConflictError(
                    f"{sound.name} has {MAX_EXAMPLES} examples already; clear them to teach "
                    "it again"
                )
            try:
                matcher = await asyncio.to_thread(self._teach, sound, samples)
            except TeachError as err:
                raise SoundError(f"this example cannot be used: {err}") from err
            sound.examples += 1
            with self._matchers:
                sound.matcher = matcher
        self._changed()
        return sound

    async def clear_examples(self, sound_id: str) -> TaughtSound:
        """Forget a sound's examples (it stops being detected until taught again)."""
        sound = self.get(sound_id)
        async with self._lock:
            sound.examples = 0
            with self._matchers:
                sound.matcher = None
            await asyncio.to_thread(self._save, sound)
        self._changed()
        return sound

    async def delete(self, sound_id: str) -> None:
        """Forget a sound entirely."""
        sound = self.get(sound_id)
        async with self._lock:
            del self.sounds[sound.slug]
            await asyncio.to_thread(shutil.rmtree, self.root / sound.slug, True)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _teach(self, sound: TaughtSound, example: Array) -> Matcher | None:
        """With one more example: the matcher (None while there are too few), the example
        written and then the sound.json that counts it (in a worker thread)."""
        folder = self.root / sound.slug
        examples = [*(_read_wav(folder / name) for name in _names(sound.examples)), example]
        if len(examples) >= MIN_EXAMPLES:
            matcher: Matcher | None = Matcher.teach(examples)
        else:
            template_of(example)  # a silent or too short example is refused at once
            matcher = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _names(len(examples))[-1]).write_bytes(to_wav_bytes(example))
        self._write_meta(folder, sound.name, len(examples))
        return matcher

    def _save(self, sound: TaughtSound) -> None:
        """Write a sound's sound.json, and drop example files it no longer counts."""
        folder = self.root / sound.slug
        folder.mkdir(parents=True, exist_ok=True)
        self._write_meta(folder, sound.name, sound.examples)
        kept = set(_names(sound.examples))
        for stale in folder.glob("example_*.wav"):
            if stale.name not in kept:
                stale.unlink()

    @staticmethod
    def _write_meta(folder: Path, name: str, examples: int) -> None:
        tmp = folder / "sound.json.tmp"
        tmp.write_text(json.dumps({"name": name, "examples": examples}), encoding="utf-8")
        tmp.replace(folder / "sound.json")

    # -- detection -------------------------------------------------------------------------

    def window_seconds(self) -> float:
        """How much recent audio the ready sounds need to be matched."""
        return max((s.matcher.window_seconds for s in self.ready() if s.matcher), default=0.0)

    def score(self, audio: Samples, last_seconds: float) -> dict[str, tuple[float, str, float]]:
        """Each ready sound's score for matches ending in the last `last_seconds` of `audio`
        (in a worker thread): category id -> (score, name, seconds before the end it began)."""
        with self._matchers:
            ready = [(s.id, s.name, s.matcher) for s in self.sounds.values() if s.matcher]
        out: dict[str, tuple[float, str, float]] = {}
        for sound_id, name, matcher in ready:
            window = round(matcher.window_seconds * 16000)
            score, began = matcher.match(np.asarray(audio)[-window:], last_seconds=last_seconds)
            out[sound_id] = (score, name, began)
        return out
