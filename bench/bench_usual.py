"""Unusual sounds and modes, measured side by side in one run.

Unusual sounds: a synthetic household (`devtools.household`: quiet nights with a cycling
fridge, talk in the morning and at lunch, traffic by day, television in the evening and a
dishwasher from 19:00 to 21:00) is played to three detectors for `--teach` days, then for
`--test` more days into which odd sounds are mixed: a door slammed, the dishwasher at 3 a.m.,
the television at 2 a.m., someone talking at 4 a.m., a slam during the evening television,
and each real recording of the regression set (`tests/model_service/recordings`) played once
at night at -12 dBFS peak. The detectors:
- ours: what the source usually hears by hour of the day (`model_service.live.usual`);
- one model for the whole day: the same statistics without the hour (every hop in one slot);
- a loudness threshold: any hop whose loudest 64 ms is over -30 dBFS.
Each goes through the service's event logic (`EventTracker`, the default thresholds). An odd
sound is found when an unusual-sound event starts between its onset and its end + 2 s; any
other event is false.

Modes: the regression set's real recordings and synthesized alarms, a slam and speech, through
the embedded tagger, counted by category at home, away and at night.

Usage: `python bench/bench_usual.py [--teach 7] [--test 2] [--minutes 20]`.
"""

from __future__ import annotations

import argparse
import calendar
from collections import Counter
from dataclasses import dataclass, field
import os
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools import household, synth
from devtools.build_recordings import decode
from devtools.scoring import frames_for_clip
from model_service.detection.events import EventTracker, dbfs, events_from_frames
from model_service.live import usual
from model_service.models.taggers import SAMPLE_RATE, Detection
from model_service.models.taggers.builtin import BuiltinTagger
from model_service.modes import INTRUSION_CATEGORIES, NIGHT_KEEPS, Mode

RECORDINGS = Path(__file__).resolve().parents[1] / "tests" / "model_service" / "recordings"
DAY0 = calendar.timegm((2026, 11, 2, 0, 0, 0))
HOP = 0.5


@dataclass
class Detector:
    """One way of scoring hops, its event logic and what it found."""

    name: str
    model: usual.UsualModel | None
    one_slot: bool = False
    tracker: EventTracker = field(default_factory=lambda: EventTracker(("unusual_sound",)))
    starts: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def play(self, hops: list[tuple[float, np.ndarray]], *, record: bool) -> None:
        """Score and learn hops; with `record`, run the event logic and keep event starts."""
        started = time.perf_counter()
        if self.model is None:
            scores = [1.0 if float(np.max(usual.levels(a)[-1])) > -30.0 else 0.0 for _, a in hops]
        else:
            # One slot: every hop is put in the same hour of the same day.
            fed = [(DAY0 + (ts - DAY0) % 3600, a) for ts, a in hops] if self.one_slot else hops
            if self.one_slot:
                self.model.hour = 0  # never "a new hour": learn into the one slot directly
            scores = self.model.step(fed)
            if self.one_slot:
                self.model._merge()  # what it heard counts at once (no later hour merges it)
        self.seconds += time.perf_counter() - started
        if not record:
            return
        for (ts, audio), score in zip(hops, scores, strict=True):
            det = {"unusual_sound": Detection(score, "Unusual sound")} if score > 0 else {}
            for update in self.tracker.update(ts - DAY0, HOP, dbfs(audio), det):
                if update.kind == "start":
                    self.starts.append(DAY0 + update.event.start)


def odd_sounds(day: int, recordings: dict[str, np.ndarray]) -> dict[tuple[int, int], tuple]:
    """What is mixed into which minute of a test day: (hour, minute) -> (label, audio, at, s)."""
    rng = np.random.default_rng(100 + day)
    odd: dict[tuple[int, int], tuple] = {}

    def put(hour: int, label: str, audio: np.ndarray, at: float) -> None:
        minute = int(rng.integers(0, 25))
        while (hour, minute) in odd:
            minute = int(rng.integers(0, 25))
        odd[(hour, minute)] = (label, audio, at, audio.size / SAMPLE_RATE)

    put(3, "slam at night", synth.bang(3.0, at=0.2, peak_dbfs=-6.0, seed=rng), 20.0)
    put(1, "slam at night (quieter, -20 dBFS)", synth.bang(3.0, peak_dbfs=-20.0, seed=rng), 30.0)
    put(3, "dishwasher at 3 a.m.", household.minute(19, 5, day=day)[: 50 * SAMPLE_RATE], 5.0)
    put(2, "television at 2 a.m.", household.minute(20, 7, day=day)[: 50 * SAMPLE_RATE], 5.0)
    put(4, "talking at 4 a.m.", household.minute(8, 9, day=day)[: 50 * SAMPLE_RATE], 5.0)
    put(20, "slam during the evening TV", synth.bang(3.0, peak_dbfs=-6.0, seed=rng), 40.0)
    for name, audio in recordings.items():
        hour = int(rng.choice([0, 1, 2, 3, 4, 5]))
        peak = float(np.max(np.abs(audio))) or 1.0
        put(hour, f"recording {name}", audio * (synth.db_to_amp(-12.0) / peak), 10.0)
    return odd


def unusual_section(args: argparse.Namespace) -> list[str]:
    """The unusual-sound comparison."""
    os.environ["TZ"] = "UTC"
    time.tzset()
    detectors = [
        Detector("ours (by hour of day)", usual.UsualModel()),
        Detector("one model for the day", usual.UsualModel(), one_slot=True),
        Detector("loudness over -30 dBFS", None),
    ]
    minutes = args.minutes
    for day in range(args.teach):
        for hour in range(24):
            for m, audio in enumerate(household.minutes(hour, minutes, day=day)):
                hops = household.hops(audio, DAY0 + day * 86400 + hour * 3600 + m * 60)
                for d in detectors:
                    d.play(hops, record=False)
    recordings = {
        path.stem: decode(path)
        for path in sorted(RECORDINGS.glob("*.opus"))
        if not path.stem.startswith("music_") or path.stem == "music_piano"
    }
    truth: list[tuple[str, float, float]] = []
    total_seconds = 0.0
    night_seconds = 0.0
    for day in range(args.teach, args.teach + args.test):
        odd = odd_sounds(day, recordings)
        for hour in range(24):
            for m in range(max(minutes, 25)):
                audio = household.minute(hour, m, day=day)
                start = DAY0 + day * 86400 + hour * 3600 + m * 60
                if (hour, m) in odd:
                    label, clip, at, seconds = odd[(hour, m)]
                    a = round(at * SAMPLE_RATE)
                    n = min(clip.size, audio.size - a)
                    audio = audio.copy()
                    audio[a : a + n] += clip[:n]
                    truth.append((label, start + at, start + at + seconds))
                hops = household.hops(audio, start)
                for d in detectors:
                    d.play(hops, record=True)
                total_seconds += 60.0
                night_seconds += 60.0 if hour < 7 or hour >= 23 else 0.0
    for d in detectors:
        for update in d.tracker.flush():
            del update  # events still open at the end have already been counted at start

    played_hours = total_seconds / 3600.0
    lines = [
        f"taught {args.teach} days ({minutes} min of each hour), then {args.test} test days "
        f"({played_hours:.0f} h played, {night_seconds / 3600:.0f} h of it at night) with "
        f"{len(truth)} odd sounds"
    ]
    header = (
        f"{'detector':26}{'odd found':>12}{'false/h':>9}{'false/night h':>15}{'x real time':>13}"
    )
    lines.append(header)
    misses: dict[str, list[str]] = {}
    for d in detectors:
        found = 0
        matched: set[int] = set()
        missed = []
        for label, onset, end in truth:
            hit = [i for i, s in enumerate(d.starts) if onset - 1.0 <= s <= end + 2.0]
            if hit:
                found += 1
                matched.update(hit)
            else:
                missed.append(label)
        false = [s for i, s in enumerate(d.starts) if i not in matched]
        false_night = [
            s for s in false if time.gmtime(s).tm_hour < 7 or time.gmtime(s).tm_hour >= 23
        ]
        speed = (args.teach * 24 * minutes * 60 + total_seconds) / max(d.seconds, 1e-9)
        lines.append(
            f"{d.name:26}{f'{found}/{len(truth)}':>12}{len(false) / played_hours:>9.2f}"
            f"{len(false_night) / (night_seconds / 3600):>15.2f}{speed:>12.0f}x"
        )
        misses[d.name] = missed
    for name, missed in misses.items():
        counted = Counter(missed)
        lines.append(f"  missed by {name}: {dict(sorted(counted.items())) or 'none'}")
    return lines


def modes_section() -> list[str]:
    """Event counts by category at home, away and at night, for the same audio."""
    tagger = BuiltinTagger(speech=True)
    clips: dict[str, np.ndarray] = {
        path.stem: decode(path) for path in sorted(RECORDINGS.glob("*.opus"))
    }
    rng = np.random.default_rng(5)
    for i in range(10):
        noise = synth.pink_noise(12.0, level_dbfs=-50.0, seed=rng)
        clips[f"smoke alarm {i}"] = (
            noise
            + np.pad(synth.smoke_alarm(8.0, level_dbfs=-25.0), (SAMPLE_RATE, 3 * SAMPLE_RATE))[
                : noise.size
            ]
        )
        clips[f"co alarm {i}"] = (
            noise
            + np.pad(synth.co_alarm(8.0, level_dbfs=-25.0), (SAMPLE_RATE, 3 * SAMPLE_RATE))[
                : noise.size
            ]
        )
        clips[f"slam {i}"] = noise + synth.bang(
            12.0, at=4.0, peak_dbfs=float(rng.uniform(-30, -6)), seed=rng
        )
        clips[f"talk {i}"] = noise + synth.talker(
            12.0, level_dbfs=float(rng.uniform(-50, -30)), seed=rng
        )
    counts = {mode: Counter() for mode in Mode}
    for name, audio in clips.items():
        frames = frames_for_clip(tagger, audio, f"modes-{name}")
        tagger.forget(f"modes-{name}")
        for mode in Mode:
            for event in events_from_frames(
                frames, tagger.info.categories, duration=audio.size / SAMPLE_RATE, mode=mode
            ):
                counts[mode][event.category] += 1
    categories = sorted(set().union(*counts.values()))
    lines = [
        f"{len(clips)} clips (the regression set's 35 real recordings; 10 each of synthesized "
        "smoke and CO alarms, slams at -30 to -6 dBFS and talk at -50 to -30 dBFS)",
        f"{'category':16}{'home':>6}{'away':>6}{'night':>7}  (events)",
    ]
    for category in categories:
        tag = " intrusion when away" if category in INTRUSION_CATEGORIES else ""
        tag += " kept at night" if category in NIGHT_KEEPS else ""
        lines.append(
            f"{category:16}{counts[Mode.HOME][category]:>6}{counts[Mode.AWAY][category]:>6}"
            f"{counts[Mode.NIGHT][category]:>7} {tag}"
        )
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    """Run both sections and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teach", type=int, default=7)
    parser.add_argument("--test", type=int, default=2)
    parser.add_argument("--minutes", type=int, default=20)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    lines = ["Unusual sounds", *unusual_section(args), "", "Modes", *modes_section()]
    lines.append(f"({time.perf_counter() - started:.0f} s)")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
