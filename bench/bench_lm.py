"""Audio LM throughput: batched generation against one request at a time.

Builds a small random Qwen2-Audio (Whisper-style encoder, Qwen2 decoder, a locally trained
tokenizer) in a temporary folder and loads it with the service's `TransformersAudioLM`. Then,
in one run, the same requests go through the same model twice:

- batched: N requests submitted concurrently; the service's batcher generates them together;
- one at a time: the same N requests awaited one after another (batches of one).

Every generation runs to `--max-new-tokens` (the tiny model never emits its end token), so
both paths do the same amount of decoding.

Prompts are short (25 audio tokens for a 1 s clip, about 25 text tokens) and every request
generates the service's default `lm_max_new_tokens`, as a caption or answer would. On a CPU
the prompt pass is compute-bound and gains little from batching, so shorter generations
(`--max-new-tokens 32`) show a smaller ratio; decoding steps are where batching pays, on a
CPU and much more so on a GPU.

Usage: `python bench/bench_lm.py [--device cpu|cuda|auto] [--batch 16] [--max-new-tokens 128]
[--hidden 256] [--layers 4] [--threads N]`. The same script runs unchanged on a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from devtools.tiny_models import build_tiny_qwen2_audio
from model_service.config import Config
from model_service.models.lm import TransformersAudioLM

RATE = 16000
QUESTIONS = (
    "What was that noise?",
    "Is a dog barking?",
    "Did someone knock on the door, and if so how many times?",
    "Is the smoke alarm beeping?",
)


def requests(count: int) -> list[tuple[np.ndarray, str | None]]:
    """Clips of 0.5-1 s with a mix of caption and question requests."""
    rng = np.random.default_rng(0)
    made: list[tuple[np.ndarray, str | None]] = []
    for i in range(count):
        clip = (0.1 * rng.standard_normal(int(RATE * (0.5 + (i % 3) / 4)))).astype(np.float32)
        made.append((clip, None if i % 2 == 0 else QUESTIONS[i % len(QUESTIONS)]))
    return made


async def one(lm: TransformersAudioLM, clip: np.ndarray, question: str | None) -> str:
    """One describe or ask request."""
    return await (lm.describe(clip) if question is None else lm.ask(clip, question))


async def measure(
    lm: TransformersAudioLM, work: list[tuple[np.ndarray, str | None]], trials: int
) -> tuple[float, float]:
    """Best (batched, one-at-a-time) requests per second on the same LM over `trials`.

    Each trial times one round of each path after an untimed warm-up request; the best
    trial of each path is reported, which keeps load from anything else on the machine from
    deciding the figures.
    """
    await lm.start()
    best = {"batched": 0.0, "single": 0.0}
    try:
        # Both paths must answer the same before either is timed (greedy decoding; left
        # padding and attention masks keep a batched prompt's answer its own).
        together = await asyncio.gather(*(one(lm, c, q) for c, q in work))
        alone = [await one(lm, c, q) for c, q in work]
        differ = sum(a != b for a, b in zip(together, alone, strict=True))
        if differ:
            raise SystemExit(f"{differ} of {len(work)} answers differ batched and one at a time")
        print(f"batched and one-at-a-time answers agree on all {len(work)} requests")
        for _ in range(trials):
            await one(lm, *work[0])
            started = time.perf_counter()
            await asyncio.gather(*(one(lm, c, q) for c, q in work))
            best["batched"] = max(best["batched"], len(work) / (time.perf_counter() - started))
            await one(lm, *work[0])
            started = time.perf_counter()
            for clip, question in work:
                await one(lm, clip, question)
            best["single"] = max(best["single"], len(work) / (time.perf_counter() - started))
    finally:
        await lm.stop()
    return best["batched"], best["single"]


def main() -> None:
    """Build the model, measure both paths, print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--batch", type=int, default=16, help="concurrent requests (default 16)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=Config().lm_max_new_tokens,
        help="tokens each request generates (default: the service's lm_max_new_tokens)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed trials (best is kept)")
    parser.add_argument("--hidden", type=int, default=256, help="decoder hidden size")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_qwen2_audio(
            Path(tmp) / "qwen2audio",
            hidden_size=args.hidden,
            num_layers=args.layers,
            audio_d_model=64,
            audio_layers=2,
            chunk_seconds=1,
            never_stop=True,
        )
        lm = TransformersAudioLM(
            str(folder),
            device=args.device,
            max_new_tokens=args.max_new_tokens,
            max_batch=args.batch,
            max_wait_ms=5.0,
        )
        params = sum(p.numel() for p in lm.model.parameters())
        print(
            f"device {lm.device} ({lm.info.extra['dtype']}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} CPU threads, load average {os.getloadavg()[0]:.1f}; Qwen2-Audio decoder {args.layers}x"
            f"{args.hidden}, {params / 1e6:.2f} M params; {args.batch} requests, "
            f"{args.max_new_tokens} new tokens each, best of {args.rounds} trials"
        )
        batched, single = asyncio.run(measure(lm, requests(args.batch), args.rounds))

    tokens = args.max_new_tokens
    print(f"{'path':<44}{'requests/s':>12}{'tokens/s':>10}")
    print(
        f"{'batched (service batcher, all at once)':<44}{batched:>12.2f}{batched * tokens:>10.0f}"
    )
    print(f"{'one request at a time':<44}{single:>12.2f}{single * tokens:>10.0f}")
    print(f"ratio {batched / single:.1f}x at batch {args.batch}")


if __name__ == "__main__":
    main()
