"""The one event logic: hysteresis, minimum duration, hold, gate, onset, flush."""

from __future__ import annotations

import numpy as np
import pytest

from model_service.detection.events import (
    CategoryParams,
    EventTracker,
    dbfs,
    events_from_frames,
    params_for,
)
from model_service.models.taggers import Detection

HOP = 0.5


def frames(scores: list[float], category: str = "speech", level: float = -20.0, onset=None):
    """Frames at t = 0.5, 1.0, ... with one category's scores."""
    return [
        (HOP * (i + 1), HOP, level, {category: Detection(s, "Speech", onset)})
        for i, s in enumerate(scores)
    ]


def test_dbfs_reference_levels() -> None:
    """Full-scale square is 0 dBFS, a full-scale sine -3 dBFS, silence the floor."""
    t = np.arange(16000) / 16000
    assert dbfs(np.sign(np.sin(2 * np.pi * 100 * t + 0.1))) == pytest.approx(0.0, abs=0.05)
    assert dbfs(np.sin(2 * np.pi * 1000 * t)) == pytest.approx(-3.01, abs=0.05)
    assert dbfs(np.zeros(100)) == -120.0
    assert dbfs(np.zeros(0)) == -120.0


def test_hysteresis_keeps_event_between_off_and_on() -> None:
    """A score that dips below `on` but stays above `off` does not split the event."""
    scores = [0.0, 0.9, 0.45, 0.4, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0]
    events = events_from_frames(frames(scores), ["speech"], duration=5.0)
    assert len(events) == 1
    event = events[0]
    assert event.start == pytest.approx(0.5)
    assert event.end == pytest.approx(2.5)
    assert event.score == pytest.approx(0.9)


def test_below_on_never_starts() -> None:
    """Scores between off and on alone never start an event."""
    events = events_from_frames(frames([0.45] * 10), ["speech"], duration=5.0)
    assert events == []


def test_min_duration_drops_blips() -> None:
    """speech needs 0.3 s: one frame of 0.5 s passes, a custom 2 s minimum rejects it."""
    tracker = EventTracker(["speech"], overrides={"speech": CategoryParams(min_duration=2.0)})
    updates = []
    for t, hop, level, det in frames([0.9, 0.0, 0.0, 0.0, 0.0, 0.0]):
        updates += tracker.update(t, hop, level, det)
    assert updates == []


def test_hold_bridges_pauses_of_alarms() -> None:
    """Smoke alarm hold (6 s) bridges the pause between bursts; the end is the last hit."""
    scores = [0.9] * 4 + [0.0] * 6 + [0.9] * 4 + [0.0] * 20
    events = events_from_frames(frames(scores, "smoke_alarm"), ["smoke_alarm"], duration=17.0)
    assert len(events) == 1
    assert events[0].end == pytest.approx(7.0)


def test_start_and_end_updates_in_order() -> None:
    """A stream sees a start update, then exactly one end update."""
    tracker = EventTracker(["loud_noise"])
    kinds = []
    for t, hop, level, det in frames([0.0, 0.9, 0.9, 0.0, 0.0, 0.0], "loud_noise"):
        kinds += [(u.kind, u.event.end) for u in tracker.update(t, hop, level, det)]
    assert kinds == [("start", None), ("end", 1.5)]


def test_gate_silences_quiet_frames() -> None:
    """Below the dBFS gate nothing is detected, whatever the tagger says."""
    events = events_from_frames(
        frames([0.9] * 6, level=-90.0), ["speech"], duration=3.0, gate_dbfs=-70.0
    )
    assert events == []


def test_alarms_are_not_gated() -> None:
    """An alarm confirmed in the silent pause after its burst still counts."""
    events = events_from_frames(
        frames([0.9] * 3, "smoke_alarm", level=-90.0, onset=2.0),
        ["smoke_alarm"],
        duration=1.5,
        gate_dbfs=-70.0,
    )
    assert len(events) == 1


def test_onset_moves_start_back() -> None:
    """A pattern detector's onset places the start where the pattern began."""
    events = events_from_frames(
        frames([0.0] * 6 + [0.9] * 3, "smoke_alarm", onset=2.5), ["smoke_alarm"], duration=5.0
    )
    assert events[0].start == pytest.approx(3.5 - 2.5)  # first hit at 3.5 s


def test_flush_ends_ongoing_at_clip_end() -> None:
    """An event still sounding at the end of a clip ends there."""
    events = events_from_frames(frames([0.9] * 6), ["speech"], duration=3.0)
    assert len(events) == 1
    assert events[0].end == pytest.approx(3.0)


def test_label_follows_peak() -> None:
    """The event's label is the label at its peak score."""
    rows = [
        (0.5, HOP, -20.0, {"dog_bark": Detection(0.6, "Dog")}),
        (1.0, HOP, -20.0, {"dog_bark": Detection(0.95, "Bark")}),
    ]
    events = events_from_frames(rows, ["dog_bark"], duration=1.0)
    assert events[0].label == "Bark"


@pytest.mark.parametrize(("sensitivity", "delta"), [("low", 0.15), ("high", -0.15)])
def test_sensitivity_shifts_thresholds(sensitivity: str, delta: float) -> None:
    """Sensitivity moves on/off thresholds by a fixed step; medium is the default."""
    base = params_for("speech")
    shifted = params_for("speech", sensitivity)
    assert shifted.on == pytest.approx(base.on + delta)
    assert shifted.off == pytest.approx(base.off + delta)
    high = EventTracker(["speech"], sensitivity="high")
    low = EventTracker(["speech"], sensitivity="low")
    det = {"speech": Detection(0.45, "Speech")}
    assert high.update(0.5, HOP, -20, det)
    assert not low.update(0.5, HOP, -20, det)


def test_set_sensitivity_applies_to_next_frames() -> None:
    """Changing sensitivity on a live tracker takes effect without losing ongoing events."""
    tracker = EventTracker(["speech"], sensitivity="low")
    det = {"speech": Detection(0.45, "Speech")}
    assert not tracker.update(0.5, HOP, -20, det)
    tracker.set_sensitivity("high")
    assert [u.kind for u in tracker.update(1.0, HOP, -20, det)] == ["start"]
    assert len(tracker.ongoing) == 1


def test_sensitivity_is_one_enum_everywhere() -> None:
    """Config, sources, /v1/classify and the tracker take the one Sensitivity; strings parse."""
    from model_service.sensitivity import CHOICES, THRESHOLD_SHIFT, Sensitivity

    assert CHOICES == ("low", "medium", "high")
    assert set(THRESHOLD_SHIFT) == set(Sensitivity)
    assert Sensitivity.parse("high") is Sensitivity.HIGH
    assert Sensitivity.HIGH == "high"  # a str on the wire and in saved state
    for bad in ("loud", "", None, 3, "HIGH"):
        with pytest.raises(ValueError, match="sensitivity must be low, medium or high"):
            Sensitivity.parse(bad)
    high = params_for("smoke_alarm", Sensitivity.HIGH)
    low = params_for("smoke_alarm", Sensitivity.LOW)
    assert high.on < params_for("smoke_alarm").on < low.on
