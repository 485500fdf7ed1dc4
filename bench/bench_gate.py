"""Activity gating: recall gated against ungated on the same household scenes, and the live
sources a CED-tiny-sized tagger sustains either way, side by side in one run.

Scenes: 90 s streams of room noise (pink noise, mains hum, distant babble at -50..-35 dBFS)
with appliance beeps, bangs and talk inserted at known times. Recall needs a model that
really detects, which random weights do not: the embedded beep, bang and speech detectors
stand in as the scoring model, scored hop by hop as a live source is, once ungated and once
behind the gate. Sustained sources use a CED-tiny-sized tagger (random weights, 12 x 192):
every hop, the windows of N streams go to it in one batch, ungated or gated; N is sustained
while a hop's batch takes less than the hop (0.5 s).

Usage: `python bench/bench_gate.py [--scenes 12] [--seconds 90] [--threads N]`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from devtools import synth
from devtools.scoring import frames_for_clip
from devtools.tiny_models import build_tiny_ced
from model_service.detection.events import SoundEvent, events_from_frames
from model_service.detection.windows import iter_windows
from model_service.models.taggers import Tagger
from model_service.models.taggers.builtin import BuiltinTagger
from model_service.models.taggers.gated import GatedTagger
from model_service.models.taggers.hf import TransformersTagger

RATE = 16000
CATEGORIES = ("appliance_beep", "loud_noise", "speech")
Truth = dict[str, list[tuple[float, float]]]


def scene(seconds: float, seed: int) -> tuple[np.ndarray, Truth]:
    """A household stream with known sounds in it."""
    rng = np.random.default_rng(seed)
    audio = synth.pink_noise(seconds, level_dbfs=float(rng.uniform(-50, -38)), seed=seed)
    if seed % 2:
        audio += synth.mains_hum(seconds, level_dbfs=-45.0, seed=seed)
    if seed % 3 == 0:
        audio += synth.babble(seconds, level_dbfs=-48.0, seed=seed)
    truth: Truth = {c: [] for c in CATEGORIES}
    slots = rng.permutation(int(seconds // 10))[:6] * 10.0 + 2.0
    for i, start in enumerate(sorted(slots)):
        kind = CATEGORIES[i % 3]
        a = round(start * RATE)
        if kind == "appliance_beep":
            beeps, intervals = synth.appliance_beeps(4.0, level_dbfs=-22.0, seed=seed + i)
            audio[a : a + beeps.size] += beeps
            truth[kind].extend((start + s, start + e) for s, e in intervals)
        elif kind == "loud_noise":
            bang = synth.bang(2.0, at=0.5, peak_dbfs=-6.0, seed=seed + i)
            audio[a : a + bang.size] += bang
            truth[kind].append((start + 0.45, start + 0.8))
        else:
            length = float(rng.uniform(3.0, 6.0))
            voice = synth.talker(length, level_dbfs=-26.0, seed=seed + i)
            audio[a : a + voice.size] += voice
            truth[kind].append((start, start + length))
    return audio.astype(np.float32), truth


def events(tagger: Tagger, audio: np.ndarray, key: str) -> list[SoundEvent]:
    """Events of one stream, scored hop by hop as a live source is."""
    frames = frames_for_clip(tagger, audio, key, batch_size=1)
    found = events_from_frames(frames, CATEGORIES, duration=audio.size / RATE)
    getattr(tagger, "forget", lambda _: None)(key)
    return found


def overlaps(event: SoundEvent, spans: list[tuple[float, float]], slack: float = 1.0) -> bool:
    end = event.end if event.end is not None else event.start + 1.0
    return any(event.start <= e + slack and end >= s - slack for s, e in spans)


def recall_table(scenes: list[tuple[np.ndarray, Truth]]) -> tuple[str, float]:
    """Recall and precision per category, ungated and gated, and the share of windows skipped."""
    rows = []
    gated_model = GatedTagger(BuiltinTagger(speech=True))
    plain = BuiltinTagger(speech=True)
    totals: dict[str, dict[str, list[int]]] = {}
    for name, tagger in (("ungated", plain), ("gated", gated_model)):
        counts = {c: [0, 0, 0, 0] for c in CATEGORIES}  # truths, found, events, correct
        for i, (audio, truth) in enumerate(scenes):
            found = events(tagger, audio, f"scene-{i}")
            for c in CATEGORIES:
                mine = [e for e in found if e.category == c]
                counts[c][0] += len(truth[c])
                counts[c][1] += sum(any(overlaps(e, [span]) for e in mine) for span in truth[c])
                counts[c][2] += len(mine)
                counts[c][3] += sum(overlaps(e, truth[c]) for e in mine)
        totals[name] = counts
    for c in CATEGORIES:
        u, g = totals["ungated"][c], totals["gated"][c]
        rows.append(
            f"| {c} | {u[0]} | {u[1] / max(u[0], 1):.3f} | {g[1] / max(g[0], 1):.3f} | "
            f"{u[3] / max(u[2], 1):.3f} | {g[3] / max(g[2], 1):.3f} |"
        )
    skipped = gated_model.skipped / max(gated_model.windows, 1)
    table = (
        "| category | sounds | recall ungated | recall gated | precision ungated | precision gated |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    return table, skipped


def hop_cost(tagger: Tagger, streams: list[np.ndarray], n: int, hops: int) -> float:
    """Mean seconds per hop for n live streams (cycled over the scenes), after a warm-up."""
    window = tagger.info.window_seconds
    per_stream = [
        list(iter_windows(streams[i % len(streams)], window, 0.5, f"live-{i}")) for i in range(n)
    ]
    offset = 8  # skip the first hops (start-up of every stream)
    for step in range(offset):
        tagger.predict([per_stream[i][step][1] for i in range(n)])
    started = time.perf_counter()
    for step in range(offset, offset + hops):
        tagger.predict([per_stream[i][step][1] for i in range(n)])
    return (time.perf_counter() - started) / hops


def sustained(tagger: Tagger, streams: list[np.ndarray], hops: int) -> tuple[int, float]:
    """The largest N (in steps of 25) whose hop takes under 0.4 s (a 20 % margin)."""
    best, cost_at_best = 0, 0.0
    for n in range(25, 1001, 25):
        cost = hop_cost(tagger, streams, n, hops)
        if cost >= 0.4:
            break
        best, cost_at_best = n, cost
    return best, cost_at_best


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--hops", type=int, default=10)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    import torch

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    scenes = [scene(args.seconds, seed) for seed in range(args.scenes)]
    minutes = args.scenes * args.seconds / 60
    table, skipped = recall_table(scenes)
    print(f"## Recall, gated vs ungated ({args.scenes} scenes, {minutes:.0f} min of audio)\n")
    print(table)
    print(f"\nWindows the gate kept from the model: {skipped:.0%}\n")

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_ced(
            Path(tmp) / "tiny", embed_dim=192, depth=12, num_heads=3, patch=(16, 16)
        )
        model = TransformersTagger(str(folder), trust_remote_code=True)
        audio = [a for a, _ in scenes]
        plain_n, plain_cost = sustained(model, audio, args.hops)
        gated_n, gated_cost = sustained(GatedTagger(model), audio, args.hops)
    print(f"## Live sources sustained, CED-tiny size (12 x 192), {threads} CPU threads\n")
    print("| path | sources sustained | seconds per 0.5 s hop at that load |")
    print("|---|---|---|")
    print(f"| ungated | {plain_n} | {plain_cost:.3f} |")
    print(f"| gated | {gated_n} | {gated_cost:.3f} |")
    print(f"\nratio gated / ungated: {gated_n / max(plain_n, 1):.1f}x")


if __name__ == "__main__":
    main()
