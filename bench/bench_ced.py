"""CED and Dasheng taggers at their real sizes: the service's batched path against
transformers' `pipeline`, one clip at a time, side by side in one run.

Random weights at the released configurations (CED tiny 192x12, mini 256x12, small 384x12,
base 768x12 with 16x16 patches; Dasheng base 768x12 with 64x4 patches), built offline as
remote-code folders (`tests/model_service/tiny_models.build_tiny_ced`) and loaded through
`trust_remote_code` as a hub id is. Each size scores the same 1 s windows both ways; the two
paths must agree on every category's score before anything is timed. Printed per size:
windows per second each way, their ratio, and live sources per CPU core (a source needs two
windows a second at the service's 0.5 s hop).

Usage: `python bench/bench_ced.py [--sizes tiny,mini,small,base,dasheng-base]
[--windows 64] [--rounds 3] [--threads N] [--device cpu|cuda] [--dtype float32|bfloat16]`.
On a GPU the same script measures live sources per GPU (`--device cuda --dtype bfloat16`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Any
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from devtools import synth
from devtools.tiny_models import build_tiny_ced
from model_service.models.taggers import Window
from model_service.models.taggers.hf import TransformersTagger

RATE = 16000
HOP_SECONDS = 0.5
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3, "patch": (16, 16)},
    "mini": {"embed_dim": 256, "depth": 12, "num_heads": 4, "patch": (16, 16)},
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6, "patch": (16, 16)},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12, "patch": (16, 16)},
    "dasheng-base": {"embed_dim": 768, "depth": 12, "num_heads": 12, "patch": (64, 4)},
}


def windows(count: int) -> list[np.ndarray]:
    """Household-like 1 s windows: room noise with speech, beeps and bangs mixed in."""
    rng = np.random.default_rng(0)
    made = []
    for i in range(count):
        audio = synth.pink_noise(1.0, seed=i)
        kind = i % 4
        if kind == 1:
            audio = audio + synth.tone(1.0, 2000.0 + 100 * i, rate=RATE)[: audio.size] * 0.1
        elif kind == 2:
            audio = audio + synth.bang(1.0, seed=i)[: audio.size]
        elif kind == 3:
            audio = audio + 0.05 * rng.standard_normal(audio.size)
        made.append(audio.astype(np.float32))
    return made


def baseline(folder: Path, device: str, dtype: Any) -> Any:
    """transformers' audio-classification pipeline, as a user would call it per clip."""
    from transformers import pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline(
            "audio-classification",
            model=str(folder),
            trust_remote_code=True,
            device=device,
            dtype=dtype,
            top_k=None,
        )


def check_same(tagger: TransformersTagger, pipe: Any, clips: list[np.ndarray]) -> float:
    """Largest score difference between the two paths over every label (must be tiny)."""
    batched = tagger.scores([Window(clip) for clip in clips[:8]])
    worst = 0.0
    for row, clip in enumerate(clips[:8]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = pipe.feature_extractor(clip, sampling_rate=RATE, return_tensors="pt")
            import torch

            with torch.inference_mode():
                dtype = pipe.model.dtype
                moved = {
                    k: v.to(pipe.device, dtype=dtype if v.is_floating_point() else v.dtype)
                    for k, v in inputs.items()
                }
                raw = pipe.model(**moved).logits
        # CED's head already returns probabilities (the service keeps them as they are).
        reference = raw.float().cpu().numpy()[0]
        worst = max(worst, float(np.abs(batched[row] - reference).max()))
    return worst


def timed(fn: Any, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    """Run every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()

    import torch

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    dtype = getattr(torch, args.dtype)
    clips = windows(args.windows)
    device_name = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"{threads} CPU threads"
    )
    print(f"# CED/Dasheng taggers, random weights, 1 s windows, {device_name}, {args.dtype}")
    print(
        "| size | params | service windows/s | pipeline windows/s | ratio | live sources"
        f" per {'GPU' if args.device.startswith('cuda') else 'core'} | max score diff |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes.split(","):
            folder = build_tiny_ced(Path(tmp) / name, **SIZES[name])
            tagger = TransformersTagger(str(folder), device=args.device, trust_remote_code=True)
            if dtype != torch.float32:
                tagger.model = tagger.model.to(dtype)
                tagger.dtype = dtype
            pipe = baseline(folder, args.device, dtype)
            # Both paths run the same weights in the same dtype; bfloat16 keeps about three
            # significant digits, so its scores may differ in the second decimal.
            diff = check_same(tagger, pipe, clips)
            allowed = 1e-3 if dtype == torch.float32 else 0.05
            if diff > allowed:
                raise SystemExit(f"{name}: the two paths disagree (max score diff {diff:.2g})")
            batch = [Window(clip) for clip in clips]
            tagger.predict(batch[:4])  # warm up
            service = timed(lambda batch=batch, tagger=tagger: tagger.predict(batch), args.rounds)

            def one_at_a_time(pipe: Any = pipe) -> None:
                for clip in clips:
                    pipe({"raw": clip, "sampling_rate": RATE})

            pipe({"raw": clips[0], "sampling_rate": RATE})
            naive = timed(one_at_a_time, args.rounds)
            wps, naive_wps = len(clips) / service, len(clips) / naive
            units = 1 if args.device.startswith("cuda") else threads
            sources = wps * HOP_SECONDS / units
            params = sum(p.numel() for p in tagger.model.parameters()) / 1e6
            print(
                f"| {name} | {params:.1f} M | {wps:.0f} | {naive_wps:.0f} | "
                f"{wps / naive_wps:.1f}x | {sources:.0f} | {diff:.1g} |"
            )
            tagger.close()


if __name__ == "__main__":
    main()
