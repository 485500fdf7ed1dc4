"""Speech recognition backends: pocketsphinx (embedded default), Whisper, or the audio LM.

Every backend takes float32 mono 16 kHz samples and answers a `Transcript`. Selection
(`asr_backend`) takes plain arguments so it is testable without the heavy packages;
pocketsphinx, torch and transformers are imported only by the backend that needs them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
import contextlib
from dataclasses import dataclass, field
import hashlib
import logging
import os
from pathlib import Path
import queue
import re
import threading
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from .batcher import BatcherClosedError, DynamicBatcher, QueueFullError

if TYPE_CHECKING:
    from .lm import AudioLM

_LOGGER = logging.getLogger(__name__)

SAMPLE_RATE = 16000

# Languages the audio LM's ASR prompt is used with when the LM does not say otherwise:
# MiDashengLM and Qwen2-Audio were trained for English and Chinese speech recognition.
DEFAULT_LM_LANGUAGES: tuple[str, ...] = ("en", "zh")

# Whisper runs 30 s windows padded to full length, so a large batch is a lot of work on a
# CPU; the tagger's batch size (64 by default) is far too many for it.
WHISPER_MAX_BATCH = 16

MAX_PHRASES = 20000


class AsrLoadError(RuntimeError):
    """A speech recognizer could not be loaded; the message names the problem."""


class UnsupportedLanguageError(ValueError):
    """The requested language is not one the loaded recognizer supports."""

    def __init__(self, language: str, supported: Sequence[str]) -> None:
        """Keep the supported languages so API answers can list them."""
        self.language = language
        self.supported = tuple(supported)
        super().__init__(
            f"language {language!r} is not supported by this speech recognizer; "
            f"supported: {', '.join(self.supported)}"
        )


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said, and in which language."""

    text: str
    language: str


@dataclass(frozen=True, kw_only=True)
class AsrInfo:
    """What a loaded recognizer is, for `/v1/info` and Wyoming's describe."""

    name: str
    backend: str
    languages: tuple[str, ...]
    device: str = "cpu"
    phrases: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Wire form for `/v1/info`."""
        return {
            "name": self.name,
            "backend": self.backend,
            "languages": list(self.languages),
            "device": self.device,
            "phrases": self.phrases,
            **self.extra,
        }


class SpeechRecognizer(Protocol):
    """A speech-to-text backend as the service uses it."""

    info: AsrInfo

    async def start(self) -> None:
        """Start worker threads / batchers (the model is already loaded)."""

    async def stop(self) -> None:
        """Stop and release resources."""

    async def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """Speech in `samples` (float32 mono 16 kHz) as text.

        `phrases`, when the backend supports them, are the sentences expected (voice
        commands); backends that cannot use them ignore them.
        """
        ...


def resolve_language(
    language: str | None, supported: Sequence[str], default: str | None
) -> str | None:
    """Map a requested language ("en", "en-US", "EN_gb") onto a supported code.

    Home Assistant sends BCP 47 tags ("en-US") while models list bare codes ("en"), so the
    primary subtag is tried after the full tag. None or "" gives `default`. Raises
    UnsupportedLanguageError listing `supported` for anything else.
    """
    if language is None or not language.strip():
        return default
    tag = language.strip().lower().replace("_", "-")
    if tag in supported:
        return tag
    primary = tag.split("-", 1)[0]
    if primary in supported:
        return primary
    raise UnsupportedLanguageError(language, supported)


# --- Phrase normalisation (pocketsphinx grammars) ---------------------------------------

_ONES = (  # noqa: SIM905 - a sentence of the words is easier to check than a list
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()  # noqa: SIM905
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "°": " degrees ", "@": " at "}
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|[^\W\d_]+(?:'[^\W\d_]+)*")
_NUMBER = re.compile(r"(\d+(?:,\d{3})*)(?:\.(\d+))?(st|nd|rd|th)?")


def number_words(value: int) -> list[str]:
    """Spell a non-negative integer as English words ("21" -> twenty one)."""
    if value < 0:
        raise ValueError("only non-negative numbers are spelled")
    if value < 20:
        return [_ONES[value]]
    if value < 100:
        tens, ones = divmod(value, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return [_ONES[hundreds], "hundred"] + (number_words(rest) if rest else [])
    for scale, name in _SCALES:
        if value >= scale:
            high, rest = divmod(value, scale)
            return number_words(high) + [name] + (number_words(rest) if rest else [])
    raise AssertionError("unreachable")  # pragma: no cover


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINALS:
        ordinal = _ORDINALS[last]
    elif last.endswith("y"):
        ordinal = last[:-1] + "ieth"
    else:
        ordinal = last + "th"
    return [*words[:-1], ordinal]


def _spell_number(token: str) -> list[str]:
    match = _NUMBER.fullmatch(token)
    if match is None:  # "1.2.3" and the like: read digit groups one by one
        return [w for part in re.findall(r"\d+", token) for w in number_words(int(part))]
    whole, fraction, suffix = match.groups()
    words = number_words(int(whole.replace(",", "")))
    if fraction:
        words += ["point", *(_ONES[int(d)] for d in fraction)]
    elif suffix:
        words = _ordinal(words)
    return words


def normalize_phrase(text: str) -> list[str]:
    """Lowercase words of a sentence as a pronunciation dictionary spells them.

    Punctuation is dropped (apostrophes inside words are kept: "what's" is a dictionary
    word), digits become words ("20%" -> twenty percent, "3rd" -> third).
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    words: list[str] = []
    for token in _TOKEN.findall(text):
        if token[0].isdigit():
            words.extend(_spell_number(token))
        else:
            words.append(token)
    return words


@dataclass(frozen=True, slots=True)
class PhraseGrammar:
    """A compiled phrase set: a word graph for pocketsphinx plus the phrases it accepts.

    `transitions` are (from, to, probability, word) tuples, or (from, to, probability) for
    the empty transitions into the final state. `phrases` maps the normalised text of each
    accepted phrase to the phrase as the client sent it; `skipped` lists phrases that were
    left out because a word is not in the pronunciation dictionary.
    """

    key: str
    start: int
    final: int
    transitions: tuple[tuple[Any, ...], ...]
    phrases: dict[str, str]
    skipped: tuple[str, ...]


def phrase_set_key(phrases: Sequence[str]) -> str:
    """Cache key of a phrase list (Home Assistant sends the same list on every request)."""
    digest = hashlib.sha256()
    for phrase in phrases:
        digest.update(phrase.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def compile_phrases(
    phrases: Sequence[str], in_dictionary: Callable[[str], bool]
) -> PhraseGrammar | None:
    """Build the smallest word graph that accepts exactly the given phrases.

    A flat grammar of alternatives (one path per sentence) keeps every sentence's words
    active at once: measured here, 1,500 Home Assistant style commands took 9-40 s to
    decode one two-second utterance. Merging shared prefixes and suffixes (a minimal
    acyclic automaton, built bottom-up over a trie) gives the same language in ~100
    transitions, decoded in ~30 ms. Each outgoing transition is weighted by how many
    phrases go through it, so every phrase is equally likely.

    Phrases with a word that is not in the dictionary are skipped (and logged at debug):
    pocketsphinx has no letter-to-sound rules, so it could never recognise them. Returns
    None when no phrase is left.
    """
    accepted: dict[str, str] = {}
    skipped: list[str] = []
    for phrase in phrases:
        words = normalize_phrase(phrase)
        if not words:
            continue
        missing = [w for w in words if not in_dictionary(w)]
        if missing:
            skipped.append(phrase)
            _LOGGER.debug("Skipping phrase %r: not in the dictionary: %s", phrase, missing)
            continue
        accepted.setdefault(" ".join(words), phrase)
    if not accepted:
        return None

    # Trie over the accepted phrases.
    children: list[dict[str, int]] = [{}]
    final: list[bool] = [False]
    for text in accepted:
        node = 0
        for word in text.split():
            nxt = children[node].get(word)
            if nxt is None:
                nxt = len(children)
                children.append({})
                final.append(False)
                children[node][word] = nxt
            node = nxt
        final[node] = True

    # Children come after their parent in the trie, so reverse creation order is bottom-up:
    # two nodes are merged when they are equally final with the same (word, child) edges.
    representative: list[int] = list(range(len(children)))
    canonical: dict[tuple[Any, ...], int] = {}
    for node in range(len(children) - 1, -1, -1):
        signature = (
            final[node],
            tuple(sorted((w, representative[c]) for w, c in children[node].items())),
        )
        representative[node] = canonical.setdefault(signature, node)

    completions: dict[int, int] = {}
    for node in range(len(children) - 1, -1, -1):
        if representative[node] == node:
            completions[node] = int(final[node]) + sum(
                completions[representative[c]] for c in children[node].values()
            )

    state_ids: dict[int, int] = {}

    def state(node: int) -> int:
        return state_ids.setdefault(node, len(state_ids))

    final_node = -1
    transitions: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    todo = [0]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        total = completions[node]
        for word, child in sorted(children[node].items()):
            target = representative[child]
            transitions.append((state(node), state(target), completions[target] / total, word))
            todo.append(target)
        if final[node]:
            transitions.append((state(node), state(final_node), 1 / total))
    return PhraseGrammar(
        key=phrase_set_key(phrases),
        start=state(0),
        final=state(final_node),
        transitions=tuple(transitions),
        phrases=accepted,
        skipped=tuple(skipped),
    )


def read_dictionary_words(path: str | Path) -> frozenset[str]:
    """Words of a CMU-style pronunciation dictionary ("word(2)" variants folded)."""
    words: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as dictionary:
        for line in dictionary:
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            if head and not head.startswith(";;"):
                words.add(head.split("(", 1)[0])
    return frozenset(words)


def prepare_pcm(samples: np.ndarray) -> bytes:
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


class PocketsphinxRecognizer:
    """Offline English ASR with pocketsphinx 5: phrase grammars or its general language model.

    pocketsphinx decoders are not thread-safe, so each worker thread borrows one decoder
    from a small pool at a time. Compiled phrase grammars are cached by the phrase set's
    hash (once per process) and added to each decoder as a named search (LRU per decoder).
    """

    MAX_GRAMMARS = 32
    MAX_SEARCHES_PER_DECODER = 8

    def __init__(self, *, workers: int | None = None, max_queue: int = 256) -> None:
        """Load the packaged English model (one decoder now, more on demand)."""
        try:
            import pocketsphinx
        except ImportError as err:
            raise AsrLoadError("pocketsphinx is not installed (pip install pocketsphinx)") from err
        self._ps = pocketsphinx
        self.workers = workers or max(1, min(2, os.cpu_count() or 1))
        self.max_queue = max_queue
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
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
        self._dict_path = str(first.config["dict"])
        self._idle.put(first)
        self.info = AsrInfo(
            name="pocketsphinx",
            backend="pocketsphinx",
            languages=("en",),
            phrases=True,
            extra={"model": "en-us"},
        )

    def _new_decoder(self) -> Any:
        try:
            decoder = self._ps.Decoder(loglevel="ERROR")
        except (RuntimeError, ValueError, OSError) as err:
            raise AsrLoadError(f"cannot load pocketsphinx's English model: {err}") from err
        self._searches[id(decoder)] = OrderedDict()
        return decoder

    @contextlib.contextmanager
    def _decoder(self) -> Iterator[Any]:
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

    def recognize(self, samples: np.ndarray, phrases: Sequence[str] | None = None) -> str:
        """Decode one utterance (blocking; runs in a worker thread)."""
        grammar = self.grammar(phrases) if phrases else None
        pcm = prepare_pcm(samples)
        with self._decoder() as decoder:
            self._activate(decoder, grammar)
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if grammar is not None:
            # Answer the sentence as the client wrote it ("Turn on the light!"), so it can
            # match its own list; a partial path (the grammar's end not reached) stays as is.
            return grammar.phrases.get(text, text)
        return text

    async def transcribe(
        self,
        samples: np.ndarray,
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


@dataclass(frozen=True, slots=True)
class _WhisperItem:
    samples: np.ndarray
    language: str | None


class WhisperRecognizer:
    """A transformers Whisper model (hub id or local folder), batched across requests."""

    def __init__(
        self,
        spec: str,
        *,
        device: str = "auto",
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
    ) -> None:
        """Load model and processor (blocking: call from a thread)."""
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from .devices import torch_device, torch_dtype

        self.device = torch_device(device)
        dtype = torch_dtype(self.device)
        try:
            self.processor: Any = cast("Any", WhisperProcessor.from_pretrained(spec))
            model = WhisperForConditionalGeneration.from_pretrained(spec, dtype=dtype)
        except (OSError, ValueError) as err:
            raise AsrLoadError(f"cannot load Whisper model {spec!r}: {err}") from err
        self.model = model.to(self.device).eval()
        self.chunk_samples = int(self.processor.feature_extractor.n_samples)
        self.lang_to_id = self._language_tokens()
        self.id_to_lang = {i: code for code, i in self.lang_to_id.items()}
        languages = tuple(sorted(self.lang_to_id)) or ("en",)
        self.max_batch = max(1, min(max_batch, WHISPER_MAX_BATCH))
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self._batcher: DynamicBatcher[_WhisperItem, Transcript] | None = None
        self.info = AsrInfo(
            name=spec,
            backend="whisper",
            languages=languages,
            device=self.device,
            extra={"multilingual": bool(self.lang_to_id)},
        )

    def _language_tokens(self) -> dict[str, int]:
        """Language code -> token id, from the generation config or else the tokenizer.

        English-only checkpoints (".en") say `is_multilingual: false` and take no language
        token; they answer {} and get no language forcing.
        """
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        gen = self.model.generation_config
        if getattr(gen, "is_multilingual", True) is False:
            return {}
        lang_to_id = getattr(gen, "lang_to_id", None)
        if not lang_to_id:
            vocab = self.processor.tokenizer.get_vocab()
            lang_to_id = {f"<|{c}|>": vocab[f"<|{c}|>"] for c in LANGUAGES if f"<|{c}|>" in vocab}
            if not lang_to_id:
                return {}
            # Older checkpoints lack these; generate() needs them to force the language.
            gen.lang_to_id = lang_to_id
            gen.is_multilingual = True
            if not getattr(gen, "task_to_id", None):
                gen.task_to_id = {
                    t: vocab[f"<|{t}|>"] for t in ("transcribe", "translate") if f"<|{t}|>" in vocab
                }
        return {token[2:-2]: int(i) for token, i in lang_to_id.items()}

    async def start(self) -> None:
        """Start the batcher."""
        if self._batcher is None:
            self._batcher = DynamicBatcher(
                "asr",
                self._run_batch,
                max_batch=self.max_batch,
                max_wait_ms=self.max_wait_ms,
                max_queue=self.max_queue,
            )
            self._batcher.start()

    async def stop(self) -> None:
        """Stop the batcher; waiting requests fail."""
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            await batcher.stop()

    async def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """Speech to text; no language means Whisper detects it. `phrases` are not used."""
        multilingual = bool(self.lang_to_id)
        lang = resolve_language(language, self.info.languages, None if multilingual else "en")
        audio = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        if audio.size == 0:
            return Transcript("", lang or self.info.languages[0])
        await self.start()
        assert self._batcher is not None
        # Whisper hears one window at a time: longer clips go as consecutive windows in one
        # submission (they batch with each other and with other requests).
        windows = [
            _WhisperItem(audio[i : i + self.chunk_samples], lang)
            for i in range(0, audio.size, self.chunk_samples)
        ]
        if lang is None and len(windows) > 1:
            # Detect once, on the first window, so one clip does not mix languages.
            first = await self._batcher.submit(windows[0])
            rest = await self._batcher.submit_many(
                [_WhisperItem(w.samples, first.language) for w in windows[1:]]
            )
            results = [first, *rest]
        else:
            results = await self._batcher.submit_many(windows)
        text = " ".join(r.text for r in results if r.text)
        return Transcript(text, results[0].language)

    def _run_batch(self, items: list[_WhisperItem]) -> list[Transcript]:
        """Transcribe a batch of windows (blocking; the batcher's worker thread)."""
        import torch

        features = self.processor.feature_extractor(
            [item.samples for item in items], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(self.device, dtype=self.model.dtype)
        with torch.inference_mode():
            if not self.lang_to_id:
                tokens = self.model.generate(features)
                languages = ["en"] * len(items)
            else:
                languages_or_none = [item.language for item in items]
                missing = [i for i, lang in enumerate(languages_or_none) if lang is None]
                if missing:
                    detected = self.model.detect_language(features[missing]).tolist()
                    for i, token_id in zip(missing, detected, strict=True):
                        languages_or_none[i] = self.id_to_lang.get(int(token_id), "en")
                languages = [lang or "en" for lang in languages_or_none]
                # One language per item: generate() puts each item's language token in its
                # decoder prompt, so a batch can mix languages.
                tokens = self.model.generate(features, language=languages, task="transcribe")
        texts = self.processor.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [Transcript(text.strip(), lang) for text, lang in zip(texts, languages, strict=True)]


class LMRecognizer:
    """Speech recognition with the loaded audio LM's ASR prompt."""

    def __init__(self, lm: AudioLM, languages: Sequence[str] = DEFAULT_LM_LANGUAGES) -> None:
        """Wrap a loaded audio LM (its lifecycle belongs to the service, not to this)."""
        self.lm = lm
        self.info = AsrInfo(
            name=lm.info.name,
            backend="lm",
            languages=tuple(languages),
            device=lm.info.device or "remote",
        )

    async def start(self) -> None:
        """Nothing to start: the service starts the LM itself."""

    async def stop(self) -> None:
        """Nothing to stop: the service stops the LM itself."""

    async def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        phrases: Sequence[str] | None = None,
    ) -> Transcript:
        """Speech to text through the LM. `phrases` are not used."""
        lang = resolve_language(language, self.info.languages, self.info.languages[0])
        assert lang is not None
        text = await self.lm.transcribe(samples, lang)
        return Transcript(text.strip(), lang)


def asr_backend(spec: str | None) -> str | None:
    """Which backend a `--asr` value selects: "pocketsphinx", "lm", "whisper" or None."""
    if spec is None:
        return None
    value = spec.strip()
    if value.lower() in ("", "none", "off"):
        return None
    if value.lower() in ("pocketsphinx", "builtin"):
        return "pocketsphinx"
    if value.lower() == "lm":
        return "lm"
    return "whisper"


def load_asr(
    spec: str | None,
    *,
    device: str = "auto",
    lm: AudioLM | None = None,
    max_batch: int = 8,
    max_wait_ms: float = 5.0,
    max_queue: int = 256,
) -> SpeechRecognizer | None:
    """Load the recognizer `--asr` names (blocking: call from a thread); None for "none"."""
    backend = asr_backend(spec)
    if backend is None:
        return None
    if backend == "pocketsphinx":
        return PocketsphinxRecognizer(max_queue=max_queue)
    if backend == "lm":
        if lm is None:
            raise AsrLoadError("--asr lm needs an audio LM: start the service with --lm as well")
        return LMRecognizer(lm)
    assert spec is not None
    return WhisperRecognizer(
        spec.strip(),
        device=device,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
    )
