"""Sounds taught by example: recall with 3 and 5 examples and false detections per hour, with
the embedded matcher and a simpler one side by side.

Sounds: five household sounds no built-in category covers (`devtools.taught_sounds`: a washing
machine's end melody, a microwave's three beeps, two different doorbell chimes, a kettle's
click), and six real recordings of devices (the regression set's bell, phone ringing, two
ringtones, a clock alarm and a camera shutter, played at up to 2 % another speed), each
recorded `--plays` times (level -30 to -10 dBFS, speed and pitch varied, RT60
0.1-0.5 s, room noise 25 dB under). For each sound and round, `k` plays are the examples and
every other play, mixed into a minute of the synthetic household (`devtools.household`, a
random hour), must be found: a taught-sound event starting between the play's onset - 1 s and its end + 1 s.
False detections: every taught sound (5 examples) listens to `--hours` hours of the household
day (its hours in turn), to the regression set's real recordings (music, TV, speech,
ringtones, household noise, hits; looped to a minute each) and to the other sounds' plays;
any event there is false.

Matchers: ours (subsequence DTW over log-mel frames, `model_service.taught`) and a bag of
frames (the examples' average log-mel spectrum; a window matches when its own is as close as
the examples are to each other), both with the service's event logic.

Usage: `python bench/bench_taught.py [--plays 12] [--rounds 3] [--hours 24]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools import household, taught_sounds
from devtools.build_recordings import decode
from model_service.detection.events import EventTracker
from model_service.models.taggers import Detection
from model_service.taught import HOP, SAMPLE_RATE, Matcher, _shape, log_mel

RECORDINGS = Path(__file__).resolve().parents[1] / "tests" / "model_service" / "recordings"
FRAME = HOP / SAMPLE_RATE  # 20 ms
# Real recordings of devices' sounds (the regression set's): taught from plays of the
# recording in other rooms, levels and backgrounds, at up to 2 % another speed.
REAL = ("bell", "phone_ringing", "im_phone_ring", "clock_alarm", "critical_error", "camera_shutter")
STEP = 25  # frames per 0.5 s hop, as the live path scores


class BagOfFrames:
    """The simpler matcher: the examples' mean log-mel shape against a sliding window's."""

    def __init__(self, examples: list[np.ndarray]) -> None:
        shapes = [_shape(log_mel(e)).mean(axis=0) for e in examples]
        self.mean = np.mean(shapes, axis=0)
        self.length = max(1, round(np.median([e.size for e in examples]) / HOP))
        spread = max(
            1.0 - float(np.dot(s, self.mean) / np.linalg.norm(s) / np.linalg.norm(self.mean))
            for s in shapes
        )
        self.threshold = max(spread, 0.02) * 1.3

    def profile(self, audio: np.ndarray) -> np.ndarray:
        """A score per 20 ms frame for the window ending there."""
        frames = _shape(log_mel(audio))
        sums = np.cumsum(np.vstack([np.zeros(frames.shape[1]), frames]), axis=0)
        n = self.length
        out = np.zeros(frames.shape[0])
        for end in range(n, frames.shape[0] + 1):
            window = (sums[end] - sums[end - n]) / n
            cos = float(
                np.dot(window, self.mean)
                / (np.linalg.norm(window) * np.linalg.norm(self.mean) + 1e-9)
            )
            out[end - 1] = np.clip(1.0 - 0.5 * (1.0 - cos) / self.threshold, 0.0, 1.0)
        return out


def event_starts(profile: np.ndarray) -> list[float]:
    """Event starts (s) from per-frame scores, hop by hop through the service's event logic."""
    tracker = EventTracker(("taught",))
    starts = []
    for end in range(STEP, profile.size + STEP, STEP):
        score = float(profile[max(0, end - STEP) : end].max()) if end - STEP < profile.size else 0.0
        det = {"taught": Detection(score, "taught")} if score > 0 else {}
        starts.extend(
            u.event.start
            for u in tracker.update(end * FRAME, STEP * FRAME, -30.0, det)
            if u.kind == "start"
        )
    return starts


def main(argv: list[str] | None = None) -> list[str]:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plays", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--hours", type=int, default=24, help="household hours of 1 minute each x 10"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    recordings = {p.stem: decode(p) for p in sorted(RECORDINGS.glob("*.opus"))}
    sources: dict[str, str | np.ndarray] = {kind: kind for kind in taught_sounds.KINDS}
    sources.update({f"real: {name}": recordings[name] for name in REAL})
    plays = {
        label: [taught_sounds.play(kind, rng, seconds=None) for _ in range(args.plays)]
        for label, kind in sources.items()
    }
    matchers = {"ours (DTW)": Matcher.teach, "bag of frames": BagOfFrames}
    lines = [f"{'matcher':16}{'sound':22}{'recall k=3':>12}{'recall k=5':>12}"]
    recall: dict[tuple[str, int], list[int]] = {}
    for mname, build in matchers.items():
        for kind in plays:
            group = "real" if kind.startswith("real: ") else "synthesized"
            cells = []
            for k in (3, 5):
                found = total = 0
                for r in range(args.rounds):
                    order = np.random.default_rng(100 * r + k).permutation(args.plays)
                    examples = [plays[kind][i][0] for i in order[:k]]
                    matcher = build(examples)
                    for i in order[k:]:
                        audio, onset = plays[kind][i]
                        bed = household.minute(
                            int(rng.integers(0, 24)), int(rng.integers(0, 60)), day=9
                        )
                        at = 20.0
                        mixed = bed.copy()
                        a = round(at * SAMPLE_RATE)
                        mixed[a : a + audio.size] += audio[: mixed.size - a]
                        starts = event_starts(matcher.profile(mixed))
                        # An event starts when the match is complete: within the sound.
                        length = float(np.flatnonzero(np.abs(audio) > 0.0)[-1]) / SAMPLE_RATE
                        hit = any(at + onset - 1.0 <= s <= at + length + 1.0 for s in starts)
                        found += hit
                        total += 1
                recall.setdefault((mname, group, k), [0, 0])
                recall[(mname, group, k)][0] += found
                recall[(mname, group, k)][1] += total
                cells.append(f"{found}/{total}")
            lines.append(f"{mname:16}{kind:22}{cells[0]:>12}{cells[1]:>12}")
    for mname in matchers:
        for group in ("synthesized", "real"):
            r3, r5 = recall[(mname, group, 3)], recall[(mname, group, 5)]
            lines.append(
                f"{mname:16}{'all ' + group:22}{r3[0] / r3[1]:>12.0%}{r5[0] / r5[1]:>12.0%}"
            )

    # False detections: each sound taught from 5 plays listens to everything else.
    looped = {
        name: np.tile(r, int(np.ceil(60 * SAMPLE_RATE / r.size)))[: 60 * SAMPLE_RATE]
        for name, r in recordings.items()
    }
    household_minutes = [
        household.minute(h % 24, m, day=10 + h // 24)
        for h in range(args.hours)
        for m in range(0, 60, 6)
    ]
    lines.append(
        f"false detections: {len(household_minutes)} household minutes ({args.hours} hours of the "
        f"day, 10 min each), the {len(looped)} real recordings looped to a minute (a taught "
        "recording's own excepted), and the other sounds' plays"
    )
    kinds = list(plays)
    for mname, build in matchers.items():
        false = 0
        cross = 0
        minutes = 0
        for kind in kinds:
            matcher = build([a for a, _ in plays[kind][:5]])
            own = kind.removeprefix("real: ")
            others = [audio for name, audio in looped.items() if name != own]
            for audio in [*household_minutes, *others]:
                false += len(event_starts(matcher.profile(audio)))
                minutes += 1
            for other in kinds:
                if other != kind:
                    for audio, _ in plays[other]:
                        cross += len(event_starts(matcher.profile(audio)))
        hours = minutes / 60.0
        lines.append(
            f"{mname:16} {false} false in {hours:.1f} sound-hours ({false / hours:.2f} per hour "
            f"per taught sound); {cross} of {len(kinds) * (len(kinds) - 1) * args.plays} plays "
            "of the other taught sounds mistaken for it"
        )
    lines.append(f"({time.perf_counter() - started:.0f} s)")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
