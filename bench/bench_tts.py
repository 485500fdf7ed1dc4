"""Text to speech through the service: time to the first audio byte, streamed against whole,
side by side in one run, against the vLLM-Omni stand-in with a set delay.

The stand-in (`devtools/mimo_servers.py`, its own process) waits `--first-delay` seconds
before the first piece of speech and `--piece-delay` between pieces of 0.5 s, as a model
that makes speech faster than real time would. The service (its own process) asks it for
speech of each sentence; measured at the client of `/v1/speak`: seconds to the first audio
byte (after the WAV header) and to the last, with `stream: true` and without. Real MiMo-Audio
timings depend on its GPU; what this measures is what the service adds and what streaming
saves.

Usage: `python bench/bench_tts.py [--first-delay 0.5] [--piece-delay 0.2] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import statistics
import sys
import tempfile
import time

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.harness import MimoServerProcess, ServiceProcess

SENTENCES = (
    "The washing machine has finished.",
    "I heard a smoke alarm in the hall two minutes ago; it went on for twelve seconds.",
    "Nothing unusual happened while you were out, apart from the doorbell at three o'clock "
    "and the dog barking twice in the garden.",
)


async def speak(
    session: aiohttp.ClientSession, url: str, token: str, text: str, stream: bool
) -> tuple[float, float, int]:
    """(seconds to the first audio byte, seconds to the last, audio bytes) of one request."""
    started = time.perf_counter()
    first = None
    size = 0
    headers = {"Authorization": f"Bearer {token}"}
    body = {"text": text, "stream": stream}
    async with session.post(f"{url}/v1/speak", json=body, headers=headers) as resp:
        resp.raise_for_status()
        async for block in resp.content.iter_any():
            size += len(block)
            if first is None and size > 44:  # past the WAV header
                first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started, size - 44


async def main_async(args: argparse.Namespace) -> list[str]:
    token = "bench-tts-token-0123456789"
    with tempfile.TemporaryDirectory() as tmp:
        omni = MimoServerProcess(
            "omni",
            Path(tmp) / "omni.log",
            first_delay=args.first_delay,
            piece_delay=args.piece_delay,
        )
        await omni.start()
        service = ServiceProcess(
            Path(tmp) / "data", token=token, extra_args=["--tts", f"openai:{omni.url}"]
        )
        try:
            await service.start()
            lines = [
                f"vLLM-Omni stand-in: first piece after {args.first_delay:g} s, 0.5 s pieces "
                f"{args.piece_delay:g} s apart; median of {args.runs} runs; seconds at the client",
                f"{'words':>6}{'speech s':>10}{'first byte':>12}{'(stream)':>10}"
                f"{'last byte':>11}{'(stream)':>10}{'first byte whole/stream':>25}",
            ]
            async with aiohttp.ClientSession() as session:
                for text in SENTENCES:
                    rows: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
                    for _ in range(args.runs):
                        for stream in (False, True):
                            rows[stream].append(
                                await speak(session, service.url, token, text, stream)
                            )
                    whole_first = statistics.median(r[0] for r in rows[False])
                    whole_last = statistics.median(r[1] for r in rows[False])
                    stream_first = statistics.median(r[0] for r in rows[True])
                    stream_last = statistics.median(r[1] for r in rows[True])
                    seconds = rows[False][0][2] / 2 / 24000
                    lines.append(
                        f"{len(text.split()):>6}{seconds:>10.1f}{whole_first:>12.2f}"
                        f"{stream_first:>10.2f}{whole_last:>11.2f}{stream_last:>10.2f}"
                        f"{whole_first / stream_first:>24.1f}x"
                    )
            return lines
        finally:
            await service.stop()
            await omni.stop()


def main(argv: list[str] | None = None) -> list[str]:
    """Run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-delay", type=float, default=0.5)
    parser.add_argument("--piece-delay", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=3)
    lines = asyncio.run(main_async(parser.parse_args(argv)))
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
