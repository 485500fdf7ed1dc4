"""Quality of the builtin tagger on synthesized and spoken clips, through the real event logic.

Every clip is cut into windows exactly as the service does (`model_service.detection.windows`), scored
by the tagger, and turned into events by `events_from_frames`. Precision and recall are
counted per clip: a positive clip is found when an event of its category overlaps the sound;
every event of a category that overlaps nothing of that category is a false positive.
Run with `-s` to see the tables; failing assertions include them too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
import shutil
import subprocess

import numpy as np
import pytest

from devtools import synth
from devtools.scoring import frames_for_clip
from model_service.detection.events import SoundEvent, events_from_frames
from model_service.detection.windows import iter_windows
from model_service.models.taggers import SAMPLE_RATE, Window
from model_service.models.taggers.builtin import BuiltinTagger

CLIP_SECONDS = 10.0
# An alarm is reported about a second after a burst ends, and ends up to 1.5 s after its
# last pulse; events that close to the truth count as found.
EARLY, LATE = 0.5, 2.5
NOISES = ("white", "pink", "brown", "hum", "babble")
ALARM_KINDS = ("smoke_piezo", "smoke_lf", "co")


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test of the module on one torch thread (conftest.py)."""


@pytest.fixture(scope="module")
def tagger(builtin_tagger: BuiltinTagger) -> BuiltinTagger:
    """The module's embedded tagger (conftest.py)."""
    return builtin_tagger


@pytest.fixture(scope="module")
def noise_bank() -> dict[str, np.ndarray]:
    """A long recording of each noise type; clips take random stretches of it."""
    rng = np.random.default_rng(1234)
    seconds = 40.0
    return {
        "white": synth.white_noise(seconds, seed=rng),
        "pink": synth.pink_noise(seconds, seed=rng),
        "brown": synth.brown_noise(seconds, seed=rng),
        "hum": np.concatenate(
            [
                synth.mains_hum(seconds / 2, freq=50.0, seed=rng),
                synth.mains_hum(seconds / 2, freq=60.0, seed=rng),
            ]
        ),
        "babble": synth.babble(seconds, talkers=4, seed=rng),
    }


def _noise(bank: dict[str, np.ndarray], kind: str, rng: np.random.Generator) -> np.ndarray:
    source = bank[kind]
    n = round(CLIP_SECONDS * SAMPLE_RATE)
    start = int(rng.integers(0, source.size - n))
    return source[start : start + n]


@dataclass
class Clip:
    """A synthesized clip and where its sounds are, per category."""

    name: str
    condition: str
    audio: np.ndarray
    truth: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass
class Tally:
    """Clip-level counts for one category and condition."""

    positives: int = 0
    found: int = 0
    events: int = 0
    false: int = 0

    @property
    def recall(self) -> float:
        """Share of positive clips with a matching event."""
        return self.found / self.positives if self.positives else 1.0

    @property
    def precision(self) -> float:
        """Share of events that match a sound of their category."""
        return (self.events - self.false) / self.events if self.events else 1.0


def clip_events(tagger: BuiltinTagger, audio: np.ndarray, key: str) -> list[SoundEvent]:
    """Events of one clip exactly as the service computes them."""
    frames = frames_for_clip(tagger, audio, key)
    events = events_from_frames(frames, tagger.info.categories, duration=audio.size / SAMPLE_RATE)
    tagger.forget(key)
    return events


def evaluate(
    tagger: BuiltinTagger, clips: list[Clip], categories: tuple[str, ...]
) -> tuple[dict[tuple[str, str], Tally], list[str]]:
    """Tally events against truth per (category, condition); also list every mistake."""
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    mistakes: list[str] = []
    for clip in clips:
        events = clip_events(tagger, clip.audio, clip.name)
        for cat in categories:
            truth = clip.truth.get(cat, [])
            mine = [e for e in events if e.category == cat]
            tally = tallies[(cat, clip.condition)]

            def hits(e: SoundEvent, truth: list[tuple[float, float]] = truth) -> bool:
                end = e.end if e.end is not None else CLIP_SECONDS
                return any(e.start <= b + LATE and end >= a - EARLY for a, b in truth)

            false = [e for e in mine if not hits(e)]
            tally.events += len(mine)
            tally.false += len(false)
            if truth:
                tally.positives += 1
                if len(mine) > len(false):
                    tally.found += 1
                else:
                    mistakes.append(f"missed {cat} in {clip.name}")
            mistakes.extend(
                f"false {cat} {e.start:.1f}-{e.end or 0:.1f}s in {clip.name}" for e in false
            )
    return tallies, mistakes


def table(tallies: dict[tuple[str, str], Tally], categories: tuple[str, ...]) -> str:
    """Precision/recall per category and condition, with totals."""
    lines = [
        f"{'category':<15}{'condition':<18}{'clips+':>7}{'recall':>8}{'events':>8}{'precision':>10}"
    ]
    for cat in categories:
        total = Tally()
        for (c, cond), t in sorted(tallies.items()):
            if c != cat:
                continue
            lines.append(
                f"{cat:<15}{cond:<18}{t.positives:>7}{t.recall:>8.2f}{t.events:>8}{t.precision:>10.2f}"
            )
            total.positives += t.positives
            total.found += t.found
            total.events += t.events
            total.false += t.false
        lines.append(
            f"{cat:<15}{'ALL':<18}{total.positives:>7}{total.recall:>8.2f}{total.events:>8}{total.precision:>10.2f}"
        )
    return "\n".join(lines)


def totals(tallies: dict[tuple[str, str], Tally], cat: str, where: Callable[[str], bool]) -> Tally:
    """Sum the tallies of one category over the conditions `where` accepts."""
    total = Tally()
    for (c, cond), t in tallies.items():
        if c == cat and where(cond):
            total.positives += t.positives
            total.found += t.found
            total.events += t.events
            total.false += t.false
    return total


def _alarm_clip(
    kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, str, list[tuple[float, float]]]:
    drift = float(rng.uniform(-0.02, 0.02))
    if kind == "co":
        offset = float(rng.uniform(0.0, sum(synth.T4_PATTERN)))
        freq = 3000.0 * float(rng.uniform(0.95, 1.1))
        audio = synth.co_alarm(CLIP_SECONDS, freq=freq, drift=drift, offset=offset)
        pulses = synth.co_alarm_intervals(CLIP_SECONDS, offset=offset)
        return audio, "co_alarm", [(pulses[0][0], pulses[-1][1])]
    offset = float(rng.uniform(0.0, sum(synth.T3_PATTERN)))
    if kind == "smoke_lf":
        freq = 520.0 * float(rng.uniform(0.98, 1.02))
        audio = synth.smoke_alarm(CLIP_SECONDS, kind="lf", freq=freq, drift=drift, offset=offset)
    else:
        freq = float(rng.uniform(2800.0, 3600.0))
        audio = synth.smoke_alarm(CLIP_SECONDS, freq=freq, drift=drift, offset=offset)
    pulses = synth.smoke_alarm_intervals(CLIP_SECONDS, offset=offset)
    return audio, "smoke_alarm", [(pulses[0][0], pulses[-1][1])]


def _other_clip(
    kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, list[tuple[float, float]]]]:
    """A sound that is no alarm; beeps come with their truth as appliance beeps."""
    seconds = CLIP_SECONDS
    if kind == "tone":
        freq = float(rng.choice([520.0, 1000.0, 3000.0, 3100.0, 3400.0]))
        return synth.steady_tone(seconds, freq), {}
    if kind == "ringback_us":
        return synth.ringback(seconds, country="us", offset=float(rng.uniform(0, 6))), {}
    if kind == "ringback_uk":
        return synth.ringback(seconds, country="uk", offset=float(rng.uniform(0, 3))), {}
    if kind == "beeps":
        audio, beeps = synth.appliance_beeps(seconds, seed=rng)
        # A beep cut by the clip's end has no end to measure; the detector waits for one.
        return audio, {"appliance_beep": [b for b in beeps if b[1] < seconds - 0.1]}
    if kind == "kettle":
        audio, beeps = synth.kettle_beep(seconds, start=float(rng.uniform(1, 6)))
        return audio, {"appliance_beep": beeps}
    if kind == "music":
        return synth.music(seconds, seed=rng), {}
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32), {}  # noise alone


OTHER_KINDS = ("tone", "ringback_us", "ringback_uk", "beeps", "kettle", "music", "noise")


def alarm_clips(bank: dict[str, np.ndarray]) -> list[Clip]:
    """Alarm positives and other sounds over every noise, with and without reverberation."""
    rng = np.random.default_rng(2024)
    clips: list[Clip] = []
    for noise in NOISES:
        for reverb in (False, True):
            cond = f"{noise}{'+reverb' if reverb else ''}"
            for kind in ALARM_KINDS:
                snrs = (5.0, 5.0, 10.0, 15.0) if kind == "co" else (5.0, 5.0, 15.0)
                for rep, snr in enumerate(snrs):
                    audio, cat, span = _alarm_clip(kind, rng)
                    if reverb:
                        audio = synth.reverb(audio, float(rng.uniform(0.3, 0.6)), seed=rng)
                    mixed = synth.mix_at_snr(audio, _noise(bank, noise, rng), snr)
                    name = f"{kind}-{cond}-{snr:.0f}dB-{rep}"
                    clips.append(Clip(name, cond, mixed, {cat: span}))
            for kind in OTHER_KINDS:
                audio, truth = _other_clip(kind, rng)
                if reverb:
                    audio = synth.reverb(audio, float(rng.uniform(0.3, 0.6)), seed=rng)
                noise_part = _noise(bank, noise, rng)
                if kind == "noise":
                    mixed = synth.set_level(noise_part, -30.0)
                else:
                    mixed = synth.mix_at_snr(audio, noise_part, 10.0)
                clips.append(Clip(f"{kind}-{cond}", cond, mixed, truth))
    return clips


def _reverb_is(reverb: bool) -> Callable[[str], bool]:
    return lambda condition: condition.endswith("+reverb") == reverb


def _noise_is(noise: str) -> Callable[[str], bool]:
    return lambda condition: condition.split("+")[0] == noise


def test_alarm_precision_recall(tagger: BuiltinTagger, noise_bank: dict[str, np.ndarray]) -> None:
    """Smoke and CO alarms: precision and recall >= 0.9 in every noise, with and without reverb.

    Per noise type and per reverberation condition the two alarms are pooled (20 and 50
    positive clips), so that one miss among three clips of a cell does not decide alone; the
    table shows every cell. Appliance beeps are tallied too (beeps and kettle clips).
    """
    categories = ("smoke_alarm", "co_alarm", "appliance_beep")
    tallies, mistakes = evaluate(tagger, alarm_clips(noise_bank), categories)
    report = table(tallies, categories) + "\n" + "\n".join(mistakes)
    print("\n" + report)
    for cat in ("smoke_alarm", "co_alarm"):
        overall = totals(tallies, cat, lambda _c: True)
        assert overall.recall >= 0.9, f"{cat} recall\n{report}"
        assert overall.precision >= 0.9, f"{cat} precision\n{report}"
        for reverb in (False, True):
            cell = totals(tallies, cat, _reverb_is(reverb))
            assert cell.recall >= 0.9, f"{cat} recall, reverb={reverb}\n{report}"
    for noise in NOISES:
        pooled = [totals(tallies, cat, _noise_is(noise)) for cat in ("smoke_alarm", "co_alarm")]
        found = sum(t.found for t in pooled) / sum(t.positives for t in pooled)
        events = sum(t.events for t in pooled)
        right = sum(t.events - t.false for t in pooled)
        assert found >= 0.9, f"alarm recall in {noise}\n{report}"
        assert right >= 0.9 * events, f"alarm precision in {noise}\n{report}"
    beeps = totals(tallies, "appliance_beep", lambda _c: True)
    assert beeps.recall >= 0.8 and beeps.precision >= 0.8, report


# -- speech -------------------------------------------------------------------------------

SENTENCES = (
    "Did you hear that noise downstairs a minute ago?",
    "Please turn off the lights in the kitchen when you leave.",
    "The kettle has boiled, shall I make some tea for everyone?",
)
VOICES = ("en", "en-us+f3", "de", "fr", "es", "en+m3")


def _speak(text: str, voice: str, workdir: Path) -> np.ndarray:
    from scipy.signal import resample_poly
    import soundfile as sf

    path = workdir / f"{voice.replace('+', '_')}-{abs(hash(text)) % 10_000}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, timeout=30)
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    # espeak-ng writes 22050 Hz; 16000/22050 = 320/441.
    return resample_poly(mono, 320, 441).astype(np.float32) if rate == 22050 else mono


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_speech_precision_recall(
    tagger: BuiltinTagger, noise_bank: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Speech is found in spoken sentences at 12 dB SNR, not in noise, tones, music or alarms."""
    rng = np.random.default_rng(77)
    n = round(CLIP_SECONDS * SAMPLE_RATE)
    speech_noises = ("white", "pink", "brown", "hum")
    clips: list[Clip] = []
    for i, voice in enumerate(VOICES):
        for j, text in enumerate(SENTENCES):
            spoken = synth.set_level(_speak(text, voice, tmp_path), -26.0, active=True)
            start = float(rng.uniform(0.5, 3.0))
            clean = np.zeros(n, np.float32)
            a = round(start * SAMPLE_RATE)
            part = spoken[: n - a]
            clean[a : a + part.size] = part
            noise = speech_noises[(i + j) % len(speech_noises)]
            mixed = synth.mix_at_snr(clean, _noise(noise_bank, noise, rng), 12.0)
            truth = {"speech": [(start, start + part.size / SAMPLE_RATE)]}
            clips.append(Clip(f"speech-{voice}-{j}-{noise}", f"speech/{noise}", mixed, truth))
    negatives: list[tuple[str, np.ndarray]] = [
        (f"tone-{freq:.0f}", synth.steady_tone(CLIP_SECONDS, freq))
        for freq in (520.0, 1000.0, 3100.0)
    ]
    negatives += [
        ("ringback-us", synth.ringback(CLIP_SECONDS, country="us")),
        ("ringback-uk", synth.ringback(CLIP_SECONDS, country="uk")),
        ("smoke-lf", synth.smoke_alarm(CLIP_SECONDS, kind="lf")),
        ("smoke", synth.smoke_alarm(CLIP_SECONDS)),
        ("co", synth.co_alarm(CLIP_SECONDS)),
    ]
    negatives.extend((f"music-{k}", synth.music(CLIP_SECONDS, seed=100 + k)) for k in range(12))
    for k, (name, sound) in enumerate(negatives):
        noise = speech_noises[k % len(speech_noises)]
        mixed = synth.mix_at_snr(sound, _noise(noise_bank, noise, rng), 20.0)
        clips.append(Clip(name, f"not-speech/{noise}", mixed))
    for noise in speech_noises:
        quiet = synth.set_level(_noise(noise_bank, noise, rng), -30.0)
        clips.append(Clip(f"noise-{noise}", f"not-speech/{noise}", quiet))
    tallies, mistakes = evaluate(tagger, clips, ("speech",))
    report = table(tallies, ("speech",)) + "\n" + "\n".join(mistakes)
    print("\n" + report)
    overall = totals(tallies, "speech", lambda _c: True)
    assert overall.recall >= 0.9, report
    assert overall.precision >= 0.9, report
    assert totals(tallies, "speech", lambda c: c.startswith("not-speech")).events == 0, report


# -- other detectors and the household scene ----------------------------------------------


def test_household_scene(tagger: BuiltinTagger) -> None:
    """The demo scene: every sound found, nothing else reported."""
    audio, truth = synth.household_scene(seed=3)
    events = clip_events(tagger, audio, "scene")
    found = {(e.category, round(e.start, 1), round(e.end or 0.0, 1)) for e in events}
    for cat, start, end in truth:
        assert any(
            e.category == cat and e.start <= end + LATE and (e.end or 1e9) >= start - EARLY
            for e in events
        ), f"{cat} {start}-{end} missed; got {sorted(found)}"
    for e in events:
        assert any(
            cat == e.category and e.start <= end + LATE and (e.end or 1e9) >= start - EARLY
            for cat, start, end in truth
        ), f"unexpected {e.category} {e.start:.1f}-{e.end}; truth {truth}"


def test_bang_and_beeps(tagger: BuiltinTagger, noise_bank: dict[str, np.ndarray]) -> None:
    """Bangs and kettle beeps are found; a steady tone and plain noise are neither."""
    rng = np.random.default_rng(5)
    quiet = synth.set_level(_noise(noise_bank, "pink", rng), -50.0)
    bang = synth.bang(CLIP_SECONDS, at=4.3, peak_dbfs=-6.0, seed=1) + quiet
    events = clip_events(tagger, bang, "bang")
    assert [e.category for e in events] == ["loud_noise"], events
    assert abs(events[0].start - 4.3) < 0.1

    kettle, beeps = synth.kettle_beep(CLIP_SECONDS, start=3.0)
    events = clip_events(tagger, synth.mix_at_snr(kettle, _noise(noise_bank, "pink", rng), 10), "k")
    assert [e.category for e in events] == ["appliance_beep"], events
    assert abs(events[0].start - beeps[0][0]) < 0.1

    tone = synth.mix_at_snr(synth.steady_tone(CLIP_SECONDS), _noise(noise_bank, "white", rng), 10)
    assert clip_events(tagger, tone, "tone") == []


# -- streaming equivalence ----------------------------------------------------------------


def _all_windows(clips: dict[str, np.ndarray]) -> list[tuple[str, float, Window]]:
    out: list[tuple[str, float, Window]] = []
    for key, audio in clips.items():
        out.extend((key, t, w) for t, w in iter_windows(audio, 5.0, 0.5, key))
    return out


def test_cache_gives_identical_results() -> None:
    """Cached and recomputed frame features give the same detections, whatever the batching.

    Signal detectors must match exactly. silero-vad runs as torch batches whose size changes
    with caching, and a batched matrix product may round differently in the last bit, so
    speech scores are compared to 1e-4.
    """
    rng = np.random.default_rng(9)
    clips = {
        "smoke": synth.mix_at_snr(
            synth.smoke_alarm(12.0, offset=1.3), synth.pink_noise(12.0, seed=1), 5
        ),
        "co": synth.mix_at_snr(synth.co_alarm(12.0, offset=4.0), synth.babble(12.0, seed=2), 5),
        "talk": synth.mix_at_snr(synth.talker(12.0, seed=3), synth.white_noise(12.0, seed=3), 12),
        "beeps": synth.appliance_beeps(12.0, seed=4)[0] + synth.bang(12.0, at=6.0, seed=4),
    }
    items = _all_windows(clips)
    cached = BuiltinTagger(cache_streams=64)
    fresh = BuiltinTagger(cache_streams=0)
    # Cached, streaming style: every stream's windows in time order, interleaved, batches of 3.
    order = sorted(range(len(items)), key=lambda i: (items[i][1], items[i][0]))
    got_cached: dict[int, dict] = {}
    for k in range(0, len(order), 3):
        idx = order[k : k + 3]
        got_cached.update(zip(idx, cached.predict([items[i][2] for i in idx]), strict=True))
    # Not cached, one big shuffled batch.
    shuffled = list(rng.permutation(len(items)))
    got_fresh = dict(zip(shuffled, fresh.predict([items[i][2] for i in shuffled]), strict=True))
    assert cached.stats["frames"] < fresh.stats["frames"] / 5
    for i in range(len(items)):
        a, b = got_cached[i], got_fresh[i]
        assert a.keys() == b.keys()
        for cat in a:
            if cat == "speech":
                assert abs(a[cat].score - b[cat].score) <= 1e-4, (items[i][:2], a[cat], b[cat])
            else:
                assert a[cat] == b[cat], (items[i][:2], cat, a[cat], b[cat])
    cached.close()
    fresh.close()


def test_reused_stream_key_is_detected() -> None:
    """A stream key reused for different audio does not serve stale cached frames."""
    tg = BuiltinTagger(speech=False)
    alarm = synth.mix_at_snr(synth.smoke_alarm(10.0), synth.pink_noise(10.0, seed=1), 10)
    quiet = synth.pink_noise(10.0, seed=2)
    first = frames_for_clip(tg, alarm, "same")
    second = frames_for_clip(tg, quiet, "same")
    reference = frames_for_clip(BuiltinTagger(speech=False, cache_streams=0), quiet, "same")
    assert any(d["smoke_alarm"].score > 0.5 for *_, d in first)
    assert [d for *_, d in second] == [d for *_, d in reference]


def test_iter_windows_layout() -> None:
    """Windows end on hop multiples of the stream, start short, and cover a ragged tail."""
    audio = np.zeros(round(7.3 * SAMPLE_RATE), np.float32)
    items = list(iter_windows(audio, 5.0, 0.5, "s"))
    ends = [w.end for _, w in items]
    assert ends[:3] == [8000, 16000, 24000]
    assert ends[-1] == audio.size and ends[-2] == 14 * 8000
    assert items[0][1].audio.size == 8000
    assert max(w.audio.size for _, w in items) == 5 * SAMPLE_RATE
    shifted = list(iter_windows(audio[:12000], 5.0, 0.5, "s", start=20000))
    assert [w.end for _, w in shifted] == [24000, 32000]
