"""`PocketsphinxRecognizer`: the embedded default, offline, decoding against the phrases
Home Assistant sends (or an open vocabulary without them)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
import contextlib
import logging
import math
import os
import queue
import threading
from typing import Any, NamedTuple

import numpy as np

from model_service.arrays import Array, Samples
from model_service.models.asr.base import (
    MAX_PHRASES,
    AsrInfo,
    AsrLoadError,
    Transcript,
    resolve_language,
)
from model_service.models.asr.grammar import (
    PhraseGrammar,
    compile_phrases,
    phrase_set_key,
    read_dictionary_words,
)
from model_service.models.batcher import BatcherClosedError, QueueFullError

_LOGGER = logging.getLogger(__name__)


def prepare_pcm(samples: Samples) -> bytes:
    """float32 samples -> 16-bit PCM as pocketsphinx wants it, with a faint noise floor.

    Exact digital silence (synthetic speech, VAD-trimmed or gated audio) gives frames of
    minus-infinite log energy that skew cepstral mean normalisation and let the silence
    model swallow words. Measured on espeak-ng commands with a phrase grammar: 15 of 32
    exactly right as is, 22-25 with pocketsphinx's own 1-LSB dither, 32 of 32 with this
    floor (a fixed seed keeps results reproducible). The clip is first scaled to a -6 dBFS
    peak (gain at most 40 dB) so the floor sits ~54 dB below the speech whatever the input
    level.
    """
    audio = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * min(0.5 / peak, 100.0)
    noise = np.random.default_rng(0).normal(0.0, 1e-3, audio.size).astype(np.float32)
    pcm = np.clip(audio + noise, -1.0, 1.0) * 32767.0
    return pcm.astype("<i2").tobytes()


# Out-of-grammar rejection. A grammar decode always ends on some phrase, however far the
# speech is from it ("unlock the front door" came out as "what was that noise"). So each word
# of the grammar's answer is compared with a free phone loop decoded over the same frames:
# where the word does not fit the speech, it scores far worse than the loop. The answer is
# rejected (no text) when the decode did not reach the end of a phrase, when it called speech
# silence (below), or when its worst word scores more than REJECT_DEFICIT under the loop
# (natural log of the acoustic likelihood, summed over the word's frames). Of the rules tried (worst word per frame, mean
# per frame, inner words only, second-worst word, a length-weighted worst word, a phone loop
# competing inside the grammar, agreement with the general language model's decode) this one
# rejected the most out-of-grammar speech for the least in-grammar speech lost; the figures
# on espeak-ng voices are in bench/RESULTS.md (`bench/bench_stt.py`).
PHONES = (
    *("aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g"),
    *("hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t"),
    *("th", "uh", "uw", "v", "w", "y", "z", "zh"),
)
LOOP_WORD = "phoneloop_{}"
LOOP_SEARCH = "phone_loop"
REJECT_DEFICIT = -40.0
# Narrower beams than pocketsphinx's defaults (1e-48, 7e-29) for the loop: its best-path pass
# over a free phone loop's lattice took ~1 s a clip with them, 0.16 s with these, for one
# more false accept in 153 (0.42 s and none more with 1e-35/1e-20).
LOOP_BEAMS = {"beam": 1e-25, "wbeam": 1e-15, "pbeam": 1e-25}
# Speech the grammar left out. A phrase decode can end early and call the rest silence
# ("what is happening in paris" came out as "what is happening", "did you hear a gunshot" as
# "did you hear a dog" with "-shot" as silence), or start late. So frames the decode calls
# silence or noise are checked for speech: a frame at speech level is within
# SPEECH_BELOW_PEAK dB of the utterance's loud frames (95th percentile) and SPEECH_OVER_FLOOR
# dB above its quiet ones (10th percentile). More than SILENT_SPEECH_FRAMES such frames (10
# ms each) reject the answer. Measured on the benchmark's espeak-ng sentences, clean and with
# white noise, TV, rock and piano under them at 15-20 dB SNR: out-of-grammar accepted 12 -> 5
# of 153 clean, and fewer in every noise; in-grammar sentences lost: none clean, 1 of 28
# under piano. A level 25 dB under the loud frames (and 10 dB over the quiet ones) lost 17 and
# 26 of 24 and 28 in-grammar sentences under rock and piano, whose quieter notes it took for
# speech.
SPEECH_BELOW_PEAK = 12.0
SPEECH_OVER_FLOOR = 15.0
SILENT_SPEECH_FRAMES = 10
FRAME_SAMPLES = 160  # pocketsphinx's 100 frames a second at 16 kHz


def frame_levels(samples: Samples) -> Array:
    """Each 10 ms frame's energy in dB (relative; a tiny floor keeps silence finite)."""
    audio = np.asarray(samples, dtype=np.float64).reshape(-1)
    frames = audio.size // FRAME_SAMPLES
    if frames == 0:
        return np.zeros(0)
    blocks = audio[: frames * FRAME_SAMPLES].reshape(frames, FRAME_SAMPLES)
    levels: Array = 10.0 * np.log10(np.mean(blocks**2, axis=1) + 1e-12)
    return levels


def speech_in_silence(levels: Array, silences: Sequence[tuple[int, int]]) -> int:
    """How many frames inside `silences` (first, last frame) are at speech level."""
    if levels.size == 0 or not silences:
        return 0
    floor = float(np.percentile(levels, 10))
    loud = float(np.percentile(levels, 95))
    speech = levels > max(floor + SPEECH_OVER_FLOOR, loud - SPEECH_BELOW_PEAK)
    return sum(int(np.count_nonzero(speech[first : last + 1])) for first, last in silences)


# The bindings hand scores back as probabilities (doubles); the smallest one's logarithm.
_LOG_FLOOR = math.log(math.ulp(0.0))


def _fillers(word: str) -> bool:
    return word in ("<s>", "</s>") or word.startswith(("<", "[", "+"))


def word_confidence(
    words: Sequence[tuple[int, int, float]], loop: Sequence[tuple[int, int, float]]
) -> float:
    """The worst word's acoustic log score minus the phone loop's over the same frames.

    `words` are (first frame, last frame, probability) of the grammar answer's words, `loop`
    the same for the phone loop's segments; a loop segment's score is spread evenly over its
    frames. About 0 or above: every word fits as well as free speech does; far below 0: some
    word was forced onto speech it does not match. A word whose probability underflowed to
    0 counts as not fitting at all; an underflowed loop segment as the smallest double, so
    neither can turn into an acceptance.
    """
    if not words:
        return -math.inf
    frames = max([*(w[1] for w in words), *(s[1] for s in loop)]) + 1
    per_frame = np.zeros(frames)
    for first, last, prob in loop:
        per_frame[first : last + 1] += (math.log(prob) if prob > 0 else _LOG_FLOOR) / (
            last - first + 1
        )
    worst = math.inf
    for first, last, prob in words:
        if prob <= 0:
            return -math.inf
        worst = min(worst, math.log(prob) - float(per_frame[first : last + 1].sum()))
    return worst


class _Decoders(NamedTuple):
    """What one worker thread borrows: the decoder, and the phone loop's when rejecting."""

    main: Any
    loop: Any | None


class PocketsphinxRecognizer:
    """Offline English ASR with pocketsphinx 5: phrase grammars or its general language model.

    pocketsphinx decoders are not thread-safe, so each worker thread borrows one decoder
    from a small pool at a time. Compiled phrase grammars are cached by the phrase set's
    hash (once per process) and added to each decoder as a named search (LRU per decoder).
    """

    MAX_GRAMMARS = 32
    MAX_SEARCHES_PER_DECODER = 8

    def __init__(
        self, *, workers: int | None = None, max_queue: int = 256, reject: bool = True
    ) -> None:
        """Load the packaged English model (one decoder now, more on demand).

        `reject` (the default) answers no text for speech that does not fit the phrases;
        False forces every utterance onto the nearest phrase, as before (for comparison).
        """
        try:
            import pocketsphinx
        except ImportError as err:
            raise AsrLoadError("pocketsphinx is not installed (pip install pocketsphinx)") from err
        self._ps = pocketsphinx
        self.reject = reject
        self.workers = workers or max(1, min(2, os.cpu_count() or 1))
        self.max_queue = max_queue
        self._idle: queue.LifoQueue[_Decoders] = queue.LifoQueue()
        self._created = 0
        self._pool_lock = threading.Lock()
        self._searches: dict[int, OrderedDict[str, None]] = {}
        self._grammars: OrderedDict[str, PhraseGrammar | None] = OrderedDict()
        self._grammar_lock = threading.Lock()
        self._words: frozenset[str] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        # Loading the first decoder here makes a broken install fail before Ready.
        first = self._new_decoder()
        self._created = 1
        self._dict_path = str(first.main.config["dict"])
        self._idle.put(first)
        self.info = AsrInfo(
            name="pocketsphinx",
            backend="pocketsphinx",
            languages=("en",),
            phrases=True,
            extra={"model": "en-us"},
        )

    def _new_decoder(self) -> _Decoders:
        try:
            decoder = self._ps.Decoder(loglevel="ERROR")
            loop = self._new_loop_decoder() if self.reject else None
        except (RuntimeError, ValueError, OSError) as err:
            raise AsrLoadError(f"cannot load pocketsphinx's English model: {err}") from err
        self._searches[id(decoder)] = OrderedDict()
        return _Decoders(decoder, loop)

    def _new_loop_decoder(self) -> Any:
        """A decoder that only runs the phone loop rejection compares a grammar's words with.

        Its own decoder, so that neither search is switched out and rebuilt for each clip.
        The word scores come from the best-path pass, as the grammar's do: the Viterbi
        path's segments scored the loop ~100 higher and separated far worse (47 of 60
        in-grammar kept for 8 of 153 false accepts, against 56 for 12).
        """
        decoder = self._ps.Decoder(loglevel="ERROR", lm=None, **LOOP_BEAMS)
        for phone in PHONES:
            decoder.add_word(LOOP_WORD.format(phone), phone.upper(), phone == PHONES[-1])
        loop = [(0, 0, 1.0 / len(PHONES), LOOP_WORD.format(phone)) for phone in PHONES]
        decoder.add_fsg(LOOP_SEARCH, decoder.create_fsg(LOOP_SEARCH, 0, 1, [*loop, (0, 1, 1.0)]))
        decoder.activate_search(LOOP_SEARCH)
        return decoder

    @contextlib.contextmanager
    def _decoder(self) -> Iterator[_Decoders]:
        try:
            decoder = self._idle.get_nowait()
        except queue.Empty:
            with self._pool_lock:
                grow = self._created < self.workers
                if grow:  # reserve the slot so two threads cannot both grow past the size
                    self._created += 1
            if not grow:
                decoder = self._idle.get()
            else:
                try:
                    decoder = self._new_decoder()
                except BaseException:
                    with self._pool_lock:
                        self._created -= 1
                    raise
        try:
            yield decoder
        finally:
            self._idle.put(decoder)

    async def start(self) -> None:
        """Start the worker threads."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="asr-pocketsphinx"
            )

    async def stop(self) -> None:
        """Stop the worker threads (running decodes finish first)."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    def in_dictionary(self, word: str) -> bool:
        """Whether pocketsphinx can pronounce `word`."""
        if self._words is None:
            self._words = read_dictionary_words(self._dict_path)
        return word in self._words

    def grammar(self, phrases: Sequence[str]) -> PhraseGrammar | None:
        """The compiled grammar for a phrase list, from the cache when seen before (blocking)."""
        key = phrase_set_key(phrases)
        with self._grammar_lock:
            if key in self._grammars:
                self._grammars.move_to_end(key)
                return self._grammars[key]
            grammar = compile_phrases(phrases, self.in_dictionary)
            if grammar is None:
                _LOGGER.warning(
                    "None of the %s phrases can be pronounced with the dictionary; "
                    "using the general language model",
                    len(phrases),
                )
            elif grammar.skipped:
                _LOGGER.info(
                    "%s of %s phrases skipped: words missing from the dictionary",
                    len(grammar.skipped),
                    len(phrases),
                )
            self._grammars[key] = grammar
            while len(self._grammars) > self.MAX_GRAMMARS:
                self._grammars.popitem(last=False)
            return grammar

    def _activate(self, decoder: Any, grammar: PhraseGrammar | None) -> None:
        if grammar is None:
            decoder.activate_search()  # the general language model
            return
        searches = self._searches[id(decoder)]
        name = f"phrases_{grammar.key}"
        if name in searches:
            searches.move_to_end(name)
        else:
            fsg = decoder.create_fsg(name, grammar.start, grammar.final, list(grammar.transitions))
            decoder.add_fsg(name, fsg)
            searches[name] = None
            while len(searches) > self.MAX_SEARCHES_PER_DECODER:
                old, _ = searches.popitem(last=False)
                decoder.remove_search(old)
        decoder.activate_search(name)

    def recognize(self, samples: Samples, phrases: Sequence[str] | None = None) -> str:
        """Decode one utterance (blocking; runs in a worker thread)."""
        grammar = self.grammar(phrases) if phrases else None
        pcm = prepare_pcm(samples)
        with self._decoder() as decoders:
            decoder = decoders.main
            self._activate(decoder, grammar)
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            text = hyp.hypstr.strip() if hyp is not None else ""
            if grammar is None:
                return text
            if text not in grammar.phrases:
                # The decode stopped inside the grammar: no phrase was said.
                _LOGGER.debug("Rejected: no whole phrase (%r)", text)
                return ""
            if decoders.loop is not None:
                segments = list(decoder.seg() or ())
                silences = [
                    (seg.start_frame, seg.end_frame)
                    for seg in segments
                    if _fillers(seg.word) and seg.word != "</s>"
                ]
                left_out = speech_in_silence(frame_levels(samples), silences)
                if left_out > SILENT_SPEECH_FRAMES:
                    _LOGGER.debug("Rejected %r: %s frames of speech left out", text, left_out)
                    return ""
                words = [
                    (seg.start_frame, seg.end_frame, seg.ascore)
                    for seg in segments
                    if not _fillers(seg.word)
                ]
                loop_decoder = decoders.loop
                loop_decoder.start_utt()
                loop_decoder.process_raw(pcm, full_utt=True)
                loop_decoder.end_utt()
                loop = [
                    (seg.start_frame, seg.end_frame, seg.ascore) for seg in loop_decoder.seg() or ()
                ]
                confidence = word_confidence(words, loop)
                if confidence < REJECT_DEFICIT:
                    _LOGGER.debug(
                        "Rejected %r: a word fits %.0f worse than free speech", text, -confidence
                    )
                    return ""
        # Answer the sentence as the client wrote it ("Turn on the light!"), so it can match
        # its own list.
        return grammar.phrases[text]

    async def transcribe(
        self,
        samples: Samples,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """Speech to text; with `phrases`, only those sentences can be recognised."""
        lang = resolve_language(language, self.info.languages, "en") or "en"
        if phrases is not None and len(phrases) > MAX_PHRASES:
            raise ValueError(f"at most {MAX_PHRASES} phrases are accepted")
        if samples.size == 0:
            return Transcript("", lang)
        if self._pending >= self.max_queue:
            raise QueueFullError("asr", 1.0)
        await self.start()
        assert self._executor is not None
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(
                self._executor, self.recognize, samples, list(phrases) if phrases else None
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._executor is None and task is not None and not task.cancelling():
                # `stop` cancelled the queued decode, not our caller: say so plainly.
                raise BatcherClosedError("asr stopped") from None
            raise
        finally:
            self._pending -= 1
        return Transcript(text, lang)
