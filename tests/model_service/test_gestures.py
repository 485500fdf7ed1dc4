"""Sound gestures (double clap, triple clap, double finger snap) from the embedded detector,
through the same event logic as live streams: each gesture is one event of its own kind, and
single hits, longer runs, knocks, bangs, a household and mixed hits are none."""

from __future__ import annotations

from pathlib import Path
import subprocess

import numpy as np
import pytest

from devtools import synth
from devtools.scoring import frames_for_clip
from model_service.categories import BY_ID, GESTURE_IDS, describe
from model_service.detection.events import SoundEvent, events_from_frames
from model_service.models.taggers import SAMPLE_RATE
from model_service.models.taggers.builtin import BuiltinTagger


def _gestures(tagger: BuiltinTagger, audio: np.ndarray, key: str) -> list[SoundEvent]:
    frames = frames_for_clip(tagger, audio, key)
    found = events_from_frames(frames, tagger.info.categories, duration=audio.size / SAMPLE_RATE)
    tagger.forget(key)
    return [e for e in found if e.category in GESTURE_IDS]


def _knocks(count: int, seed: int) -> np.ndarray:
    """Knuckles on a door: low thuds (the door panel rings at 100-400 Hz) 0.25 s apart."""
    rng = np.random.default_rng(seed)
    out = np.zeros(4 * SAMPLE_RATE)
    t = np.arange(round(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
    for k in range(count):
        at = round((1.5 + 0.25 * k) * SAMPLE_RATE)
        thud = sum(
            np.sin(2 * np.pi * rng.uniform(100, 400) * t) * np.exp(-t / rng.uniform(0.02, 0.06))
            for _ in range(3)
        ) + 0.1 * rng.standard_normal(t.size) * np.exp(-t / 0.004)
        out[at : at + t.size] += 0.3 * thud / np.max(np.abs(thud))
    return out.astype(np.float32)


RECORDINGS = Path(__file__).parent / "recordings"
DECODE_TO_PCM = ("-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-")


def _recorded(name: str) -> np.ndarray:
    """A recorded single hit of the regression set (16 kHz mono), decoded by ffmpeg."""
    raw = subprocess.run(
        [*("ffmpeg", "-v", "error", "-i", str(RECORDINGS / f"{name}.opus")), *DECODE_TO_PCM],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0


def _played(names: list[str], seed: int) -> np.ndarray:
    """Recorded hits played one after another at a person's varied pace, in a room."""
    rng = np.random.default_rng(seed)
    out = np.zeros(5 * SAMPLE_RATE, np.float32)
    interval = float(rng.uniform(0.2, 0.5))
    level = float(rng.uniform(-12, 0))
    when = 1.5
    for name in names:
        hit = _recorded(name) * float(synth.db_to_amp(level + rng.uniform(-2, 2)))
        start = round(when * SAMPLE_RATE)
        out[start : start + hit.size] += hit[: out.size - start]
        when += interval * (1.0 + rng.uniform(-0.15, 0.15))
    rt60 = float(rng.uniform(0.0, 0.6))
    room = synth.reverb(out, rt60, drr_db=3.0, seed=rng) if rt60 > 0.05 else out
    return room + synth.pink_noise(5.0, level_dbfs=-60.0, seed=rng)


@pytest.mark.parametrize(
    ("hits", "expected"),
    [
        (["hand_clap", "hand_clap"], "double_clap"),
        (["hand_clap_hard", "hand_clap", "hand_clap_hard"], "triple_clap"),
        (["hand_clap_pearl", "hand_clap_pearl"], "double_clap"),
        (["hand_clap_pearl", "hand_clap", "hand_clap_pearl"], "triple_clap"),
        (["finger_snap", "finger_snap"], "double_snap"),
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_recorded_hands(
    builtin_tagger: BuiltinTagger, hits: list[str], expected: str, seed: int
) -> None:
    """Recorded claps and finger snaps (not synthesized ones), as a person would do them in
    a room, are the gesture they make."""
    found = _gestures(builtin_tagger, _played(hits, seed), f"{'-'.join(hits)}-{seed}")
    assert [e.category for e in found] == [expected]


@pytest.mark.parametrize("hit", ["cajon_slap", "clave", "bongo", "maraca", "tambourine"])
@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("seed", range(2))
def test_recorded_percussion_is_no_gesture(
    builtin_tagger: BuiltinTagger, hit: str, count: int, seed: int
) -> None:
    """Recorded hand percussion played like a gesture (two or three hits) is none: too dull,
    too tonal or too bright for hands."""
    assert _gestures(builtin_tagger, _played([hit] * count, seed), f"{hit}-{count}-{seed}") == []


def test_gestures_are_categories_of_their_kind() -> None:
    """The wire says which categories are gestures (momentary, made on purpose)."""
    assert GESTURE_IDS == ("double_clap", "triple_clap", "double_snap")
    wire = {c["id"]: c for c in describe(["smoke_alarm", *GESTURE_IDS])}
    assert wire["smoke_alarm"]["kind"] == "sound"
    assert all(wire[g]["kind"] == "gesture" for g in GESTURE_IDS)
    assert all(BY_ID[g].labels == () for g in GESTURE_IDS)


@pytest.mark.parametrize(
    ("kind", "count", "expected"),
    [("clap", 2, "double_clap"), ("clap", 3, "triple_clap"), ("snap", 2, "double_snap")],
)
@pytest.mark.parametrize("seed", range(4))
def test_gesture_heard_once(
    builtin_tagger: BuiltinTagger, kind: str, count: int, expected: str, seed: int
) -> None:
    """A gesture in a reverberant room, at a varied pace, is one event of its kind."""
    rng = np.random.default_rng(seed)
    audio = synth.gesture(
        kind,
        count,
        seconds=5.0,
        interval=rng.uniform(0.2, 0.5),
        peak_dbfs=rng.uniform(-30, -10),
        rt60=rng.uniform(0.2, 0.6),
        seed=seed,
    )
    found = _gestures(builtin_tagger, audio, f"{kind}{count}-{seed}")
    assert [e.category for e in found] == [expected]
    # Its onset is the first hit's (1.5 s in), within a frame or two.
    assert found[0].start == pytest.approx(1.5, abs=0.06)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("one clap", lambda s: synth.gesture("clap", 1, seed=s)),
        ("four claps", lambda s: synth.gesture("clap", 4, seed=s)),
        ("applause", lambda s: synth.gesture("clap", 12, interval=0.15, seed=s)),
        ("three snaps", lambda s: synth.gesture("snap", 3, seed=s)),
        ("claps too slow", lambda s: synth.gesture("clap", 2, interval=1.2, jitter=0, seed=s)),
        ("three knocks", lambda s: _knocks(3, s)),
        ("two knocks", lambda s: _knocks(2, s)),
        ("a door slam", lambda s: synth.bang(4.0, at=1.5, seed=s)),
        (
            "a clap then a snap",
            lambda s: np.concatenate(
                [
                    synth.gesture("clap", 1, seconds=1.8, seed=s),
                    synth.gesture("snap", 1, at=0.0, seed=s),
                ]
            ),
        ),
        (
            "claps over music",
            lambda s: synth.gesture("clap", 2, seed=s)
            + synth.set_level(synth.music(4.0, seed=s), -25.0, active=True),
        ),
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_no_gesture(builtin_tagger: BuiltinTagger, name: str, make, seed: int) -> None:
    """What is not a gesture (or not alone in a quiet moment) triggers none."""
    assert _gestures(builtin_tagger, make(seed), f"{name}-{seed}") == []


def test_no_gesture_in_a_household(builtin_tagger: BuiltinTagger) -> None:
    """A minute of a home (talk, a kettle, alarms, a bang) triggers no gesture."""
    scene, _ = synth.household_scene(seed=5)
    assert _gestures(builtin_tagger, scene, "scene") == []
