"""Sound gestures: how often the embedded detector recognises a double clap, a triple clap
and a double finger snap, and how often everyday audio triggers one, in one run.

Recognition: recorded claps and a recorded finger snap (the regression set's, from a drum
kit of hand percussion), played at a person's pace in simulated rooms, with recorded hand
percussion (wood block, cajon, clave, bongo, maraca, tambourine) played the same way, which
must be nothing; and synthesized gestures (`devtools.synth.gesture`) at a random pace (0.15-0.5 s
between hits, each gap varied by 15 %), level (-35 to -8 dBFS peaks) and room (RT60 0.1-0.8
s), over pink room noise at 40, 30 and 20 dB SNR. Everyday audio: the real recordings of
`tests/model_service/recordings` (music, TV, speech, ringtones, household noise; each
looped to a minute) and synthesized household scenes (talk, a kettle, alarms, a bang). Both
go through the same event logic as live streams.

Usage: `python bench/bench_gestures.py [--variants 30] [--scenes 40]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools import synth
from devtools.build_recordings import decode
from devtools.scoring import frames_for_clip
from model_service.categories import GESTURE_IDS
from model_service.detection.events import events_from_frames
from model_service.models.taggers import SAMPLE_RATE
from model_service.models.taggers.builtin import BuiltinTagger

RECORDINGS = Path(__file__).resolve().parents[1] / "tests" / "model_service" / "recordings"
KINDS = (("clap", 2, "double_clap"), ("clap", 3, "triple_clap"), ("snap", 2, "double_snap"))


def gestures_in(tagger: BuiltinTagger, audio: np.ndarray, key: str) -> list[str]:
    """The gesture events of a clip, as the service computes them."""
    frames = frames_for_clip(tagger, audio, key)
    found = events_from_frames(frames, tagger.info.categories, duration=audio.size / SAMPLE_RATE)
    tagger.forget(key)
    return [e.category for e in found if e.category in GESTURE_IDS]


PERCUSSION = ("wood_block", "cajon_slap", "clave", "bongo", "maraca", "tambourine")


def _play(hits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Recorded hits one after another at a varied pace and level, in a room, 5 s."""
    out = np.zeros(5 * SAMPLE_RATE, np.float32)
    interval = float(rng.uniform(0.2, 0.5))
    level = float(rng.uniform(-12, 0))
    when = 1.5
    for hit in hits:
        start = round(when * SAMPLE_RATE)
        scaled = hit * float(synth.db_to_amp(level + rng.uniform(-2, 2)))
        out[start : start + scaled.size] += scaled[: out.size - start]
        when += interval * (1.0 + rng.uniform(-0.15, 0.15))
    rt60 = float(rng.uniform(0.0, 0.6))
    room = synth.reverb(out, rt60, drr_db=3.0, seed=rng) if rt60 > 0.05 else out
    return room + synth.pink_noise(5.0, level_dbfs=-60.0, seed=rng)


def main(argv: list[str] | None = None) -> list[str]:
    """Run both measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=30)
    parser.add_argument("--scenes", type=int, default=40)
    args = parser.parse_args(argv)
    tagger = BuiltinTagger(speech=False)
    lines = [f"{'gesture':14}{'SNR 40 dB':>14}{'SNR 30 dB':>14}{'SNR 20 dB':>14}  wrong kind"]
    started = time.perf_counter()
    for kind, count, expected in KINDS:
        cells = []
        wrong: list[str] = []
        for snr in (40.0, 30.0, 20.0):
            hit = 0
            for v in range(args.variants):
                rng = np.random.default_rng(v * 1000 + int(snr))
                audio = synth.gesture(
                    kind,
                    count,
                    seconds=5.0,
                    interval=float(rng.uniform(0.15, 0.5)),
                    peak_dbfs=float(rng.uniform(-35, -8)),
                    rt60=float(rng.uniform(0.1, 0.8)),
                    seed=rng,
                )
                noise = synth.pink_noise(5.0, seed=rng)
                mixed = synth.mix_at_snr(audio, noise, snr, active=True)
                found = gestures_in(tagger, mixed, f"{expected}-{snr}-{v}")
                hit += found == [expected]
                wrong += [f for f in found if f != expected]
            cells.append(f"{hit}/{args.variants} ({hit / args.variants:.0%})")
        lines.append(
            f"{expected:14}{cells[0]:>14}{cells[1]:>14}{cells[2]:>14}  {sorted(set(wrong))}"
        )

    # Recorded hits (the regression set's claps, snap and hand percussion) played as a person
    # would, in simulated rooms: what is recognised.
    recorded = {
        name: decode(RECORDINGS / f"{name}.opus")
        for name in (
            "hand_clap",
            "hand_clap_hard",
            "hand_clap_pearl",
            "finger_snap",
            *PERCUSSION,
        )
    }
    plays = (
        ("claps x2", ["hand_clap", "hand_clap_pearl"], 2, "double_clap"),
        ("claps x3", ["hand_clap", "hand_clap_hard", "hand_clap_pearl"], 3, "triple_clap"),
        ("snaps x2", ["finger_snap"], 2, "double_snap"),
        *((f"{p} x{n}", [p], n, None) for p in PERCUSSION for n in (2, 3)),
    )
    lines.append(f"recorded hits, {args.variants} plays each (pace, level, room varied): heard as")
    for label, names, count, expected in plays:
        heard: dict[str, int] = {}
        for v in range(args.variants):
            rng = np.random.default_rng(7000 + v)
            audio = _play([recorded[names[k % len(names)]] for k in range(count)], rng)
            key = ",".join(gestures_in(tagger, audio, f"{label}-{v}")) or "nothing"
            heard[key] = heard.get(key, 0) + 1
        right = heard.get(expected or "nothing", 0)
        lines.append(f"  {label:16} {right}/{args.variants} right  {heard}")

    everyday: list[tuple[str, np.ndarray]] = []
    manifest = json.loads((RECORDINGS / "manifest.json").read_text())
    for clip in manifest["clips"]:
        audio = decode(RECORDINGS / clip["file"])
        pause = np.zeros(SAMPLE_RATE, np.float32)
        one = np.concatenate([audio, pause])
        everyday.append((clip["file"], np.tile(one, int(np.ceil(60 * SAMPLE_RATE / one.size)))))
    for seed in range(args.scenes):
        scene, _ = synth.household_scene(seed=seed)
        everyday.append((f"household scene {seed}", scene))
    seconds = sum(a.size for _, a in everyday) / SAMPLE_RATE
    false: list[tuple[str, str]] = []
    for name, audio in everyday:
        false += [(name, g) for g in gestures_in(tagger, audio, name)]
    hours = seconds / 3600
    lines.append(
        f"everyday audio: {hours * 60:.0f} min ({len(manifest['clips'])} real recordings looped "
        f"to a minute, {args.scenes} household scenes): {len(false)} gestures, "
        f"{len(false) / hours:.2f} per hour {false}"
    )
    if not false:
        # No event in T hours: the rate is under 3/T per hour with 95 % confidence.
        lines.append(f"  95 % upper bound on the rate: {3 / hours:.1f} per hour")
    lines.append(f"run time {time.perf_counter() - started:.0f} s")
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
