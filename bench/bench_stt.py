"""Speech-to-text rejection: the embedded recogniser forcing every utterance onto the
nearest phrase against the same recogniser rejecting what does not fit, side by side on the
same clips.

Sentences: `devtools/stt_sentences.py` (131 phrases like Home Assistant's, 20 in-grammar
sentences, 51 out-of-grammar ones, 11 of them one word or phrase away from a phrase), said
by three espeak-ng voices. Reported: in-grammar sentence accuracy, the false-accept rate
(out-of-grammar speech that came back as a phrase), and the decode time per clip on one
thread, as a ratio.

Usage: `python bench/bench_stt.py [--voices en-us,en-gb,en-us+m3]`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.stt_sentences import PHRASES, VOICES, Figures, evaluate, synthesize
from model_service.models.asr import PocketsphinxRecognizer


async def measure(reject: bool, clips: dict) -> tuple[Figures, float]:
    """Figures and seconds per clip for one recogniser (one worker thread)."""
    recognizer = PocketsphinxRecognizer(workers=1, reject=reject)
    try:
        await evaluate(recognizer, dict(list(clips.items())[:2]))  # compile the grammar first
        started = time.perf_counter()
        figures = await evaluate(recognizer, clips)
        return figures, (time.perf_counter() - started) / len(clips)
    finally:
        await recognizer.stop()


def main(argv: list[str] | None = None) -> list[str]:
    """Run both, print the table and what each got wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default=",".join(VOICES))
    args = parser.parse_args(argv)
    voices = tuple(v for v in args.voices.split(",") if v)
    clips = synthesize(voices)
    seconds = sum(c.size for c in clips.values()) / 16000 / len(clips)
    lines = [
        f"pocketsphinx en-us, {len(PHRASES)} phrases, voices {', '.join(voices)}; "
        f"{len(clips)} clips of {seconds:.1f} s on average, one decoder thread",
        f"{'recogniser':28}{'in-grammar right':>18}{'false accepts':>16}{'ms per clip':>13}",
    ]
    results = {}
    for label, reject in (("forced onto a phrase", False), ("rejecting (default)", True)):
        figures, per_clip = asyncio.run(measure(reject, clips))
        results[label] = figures, per_clip
        lines.append(
            f"{label:28}"
            f"{f'{figures.in_grammar_right}/{figures.in_grammar} ({figures.accuracy:.0%})':>18}"
            f"{f'{len(figures.false_accepts)}/{figures.out_of_grammar} ({figures.false_accept_rate:.0%})':>16}"
            f"{per_clip * 1000:>13.0f}"
        )
    forced, rejecting = results["forced onto a phrase"], results["rejecting (default)"]
    lines.append(f"decode time, rejecting / forced: {rejecting[1] / forced[1]:.1f}x")
    lines.append("in-grammar lost by rejecting (voice: said -> answer):")
    lines += [f"  {v}: {s!r} -> {t!r}" for v, s, t in rejecting[0].in_grammar_lost]
    lines.append("false accepts left (voice: said -> answer):")
    lines += [f"  {v}: {s!r} -> {t!r}" for v, s, t in rejecting[0].false_accepts]
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
