"""Activity gating: the model hears what is new on a stream, and nothing is missed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from devtools import synth
from model_service.models.taggers import Detection, TaggerInfo, Window
from model_service.models.taggers.gated import GatedTagger

RATE = 16000
HOP = RATE // 2


class CountingTagger:
    """Scores a window by its newest hop's loudness, and counts the windows it runs on."""

    def __init__(self) -> None:
        self.info = TaggerInfo(
            name="counting",
            backend="test",
            categories=("loud_noise",),
            window_seconds=1.0,
            hop_seconds=0.5,
        )
        self.ran: list[int] = []

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        self.ran.extend(w.end for w in windows)
        return [
            {"loud_noise": Detection(float(np.abs(w.audio[-HOP:]).max()), "Bang")} for w in windows
        ]

    def close(self) -> None:
        pass


def _stream(audio: np.ndarray, key: str = "kitchen") -> list[Window]:
    return [
        Window(audio[max(0, end - RATE) : end], stream=key, end=end)
        for end in range(HOP, audio.size + 1, HOP)
    ]


def _run(gated: GatedTagger, windows: list[Window]) -> list[dict[str, Detection]]:
    # One window per call, in order, as a live source's hops arrive.
    return [gated.predict([w])[0] for w in windows]


def test_steady_background_runs_the_model_only_to_refresh() -> None:
    """Ten seconds of the same fridge hum: the model hears its first two hops (the second
    shows the sound is steady), then once every refresh (2 s)."""
    model = CountingTagger()
    gated = GatedTagger(model)
    hum = synth.mains_hum(10.0) + synth.pink_noise(10.0, seed=1)
    results = _run(gated, _stream(hum.astype(np.float32)))
    assert model.ran == [HOP, 2 * HOP, 6 * HOP, 10 * HOP, 14 * HOP, 18 * HOP]
    assert gated.skipped == 14 and gated.windows == 20
    # The answers in between are the model's last answer for that stream.
    assert results[2]["loud_noise"] == results[1]["loud_noise"]


def test_a_sound_that_starts_stops_or_knocks_is_heard() -> None:
    """A tone starting, stopping, and a bang inside steady noise each reach the model, and
    so does the hop after each (a sound just begun may not be recognised yet)."""
    model = CountingTagger()
    gated = GatedTagger(model, refresh_seconds=60.0)
    audio = synth.pink_noise(12.0, seed=2)
    audio[3 * RATE : 6 * RATE] += synth.tone(3.0, 1000.0, level_dbfs=-15.0)
    audio += synth.bang(12.0, at=9.2, peak_dbfs=-6.0)
    _run(gated, _stream(audio.astype(np.float32)))
    ran = {end / RATE for end in model.ran}
    assert 0.5 in ran  # first window of the stream
    assert 3.5 in ran  # the tone starts in the hop 3.0-3.5 s
    assert 6.5 in ran  # and stops in 6.0-6.5 s
    assert 9.5 in ran  # the bang at 9.2 s
    assert {1.0, 4.0, 7.0, 10.0} <= ran  # the hop after each change
    assert len(ran) <= 9  # and nothing else: 15 of 24 hops stay with the gate


def test_requests_without_a_stream_always_run_and_streams_are_kept_apart() -> None:
    """One-off windows are never gated; each stream has its own memory, forgotten at its end."""
    model = CountingTagger()
    gated = GatedTagger(model)
    quiet = (synth.pink_noise(1.0, seed=3)).astype(np.float32)
    gated.predict([Window(quiet), Window(quiet)])
    assert len(model.ran) == 2
    gated.predict([Window(quiet, stream="a", end=RATE)])
    gated.predict([Window(quiet, stream="b", end=RATE)])
    assert len(model.ran) == 4
    gated.predict([Window(quiet, stream="a", end=RATE + HOP)])  # a's second hop: it settles
    gated.predict([Window(quiet, stream="a", end=RATE + 2 * HOP)])  # steady: the gate answers
    assert len(model.ran) == 5
    gated.forget("a")
    gated.predict([Window(quiet, stream="a", end=RATE + 3 * HOP)])
    assert len(model.ran) == 6
