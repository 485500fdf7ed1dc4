"""CED taggers as their hub code ships them, through the path a hub id takes.

The stand-in (`tiny_models.build_tiny_ced`) is remote code loaded with `trust_remote_code`
and reproduces what the service relies on from CED's hub code: probabilities from the head
(`mean` pooling) or logits (`logit`), features clamped batch-wide at `top_db`, and labels cut
at their first comma from a label file the configuration reads when it loads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from devtools import synth
from devtools.scoring import frames_for_clip
from devtools.tiny_models import build_tiny_ced
from model_service.__main__ import run
from model_service.categories import CATEGORY_IDS
from model_service.detection.events import events_from_frames, params_for
from model_service.models.taggers import SAMPLE_RATE, TaggerLoadError, Window, load_tagger
from model_service.models.taggers.combined import CombinedTagger
from model_service.models.taggers.hf import TransformersTagger

QUIET = {cid: params_for(cid).off for cid in CATEGORY_IDS}


@pytest.fixture(scope="module")
def ced_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CED-shaped tagger with mean pooling (sigmoid in the head), as released."""
    return build_tiny_ced(tmp_path_factory.mktemp("ced"))


@pytest.fixture(scope="module")
def ced(ced_dir: Path) -> TransformersTagger:
    """The stand-in loaded through `trust_remote_code`, with the service's quiet check."""
    tagger = load_tagger(str(ced_dir), trust_remote_code=True, quiet_thresholds=QUIET)
    assert isinstance(tagger, TransformersTagger)
    return tagger


def _half_silent() -> np.ndarray:
    audio = np.zeros(SAMPLE_RATE, np.float32)
    audio[SAMPLE_RATE // 2 :] = 0.01 * np.random.default_rng(1).standard_normal(SAMPLE_RATE // 2)
    return audio


def _tone() -> np.ndarray:
    t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


def test_labels_cut_at_the_first_comma_still_map(ced: TransformersTagger) -> None:
    """The config's cut names ("Smoke detector") map, and users see AudioSet's full names."""
    config_labels = set(ced.model.config.id2label.values())
    assert "Smoke detector" in config_labels
    assert "Smoke detector, smoke alarm" not in config_labels
    assert ced.info.labels["smoke_alarm"] == ["Smoke detector, smoke alarm"]
    assert ced.info.labels["baby_cry"] == ["Baby cry, infant cry"]
    assert "Beep, bleep" in ced.info.labels["appliance_beep"]
    assert ced.info.extra["num_labels"] == 527


def test_head_probabilities_are_not_squashed_again(ced_dir: Path, tmp_path: Path) -> None:
    """Mean pooling returns probabilities (kept as they are); logit pooling gets a sigmoid."""
    probs = TransformersTagger(str(ced_dir), trust_remote_code=True)
    assert probs.info.extra["outputs"] == "probabilities"
    logits = TransformersTagger(
        str(build_tiny_ced(tmp_path / "logit", pooling="logit")), trust_remote_code=True
    )
    assert logits.info.extra["outputs"] == "logits"
    for tagger in (probs, logits):
        scores = tagger.scores([Window(np.zeros(SAMPLE_RATE, np.float32))])
        # The head's bias is -6: sigmoid(-6) = 0.0025; squashing twice would give 0.5.
        assert float(scores.max()) < 0.01


def test_a_window_scores_the_same_alone_and_in_a_mixed_batch(ced: TransformersTagger) -> None:
    """Upstream's extractor lets a loud batchmate move a quiet window's features; ours not."""
    import torch

    quiet, loud = _half_silent(), _tone()
    mixed = ced.extractor([loud, quiet], sampling_rate=SAMPLE_RATE)["input_values"][1]
    alone = ced.extractor([quiet], sampling_rate=SAMPLE_RATE)["input_values"][0]
    assert float((mixed - alone).abs().max()) > 10.0  # dB: the stand-in is faithful
    assert ced.info.extra["features"] == "batched, normalised per window"

    together = ced._features(np.stack([loud, quiet]))["input_values"][1]
    assert torch.allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(
        ced.scores([Window(loud), Window(quiet)])[1:], ced.scores([Window(quiet)]), atol=1e-7
    )


def test_an_unknown_extractor_that_mixes_the_batch_gets_one_window_per_call(
    ced_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a batched equivalent, the load-time probe finds the mixing and falls back."""
    from model_service.models.taggers import hf

    monkeypatch.setattr(hf._CedFeatures, "applies", classmethod(lambda cls, extractor: False))
    tagger = TransformersTagger(str(ced_dir), trust_remote_code=True)
    assert tagger.info.extra["features"] == "one window per call"
    quiet, loud = _half_silent(), _tone()
    np.testing.assert_allclose(
        tagger.scores([Window(loud), Window(quiet)])[1:], tagger.scores([Window(quiet)]), atol=1e-7
    )


def test_a_model_that_hears_something_in_silence_does_not_start(tmp_path: Path) -> None:
    """A model that would keep a sensor on in a quiet home stops the start with a reason."""
    folder = build_tiny_ced(tmp_path / "loud", biases={"Smoke detector, smoke alarm": 3.0})
    with pytest.raises(TaggerLoadError, match=r"hears 'Smoke detector, smoke alarm' in silence"):
        load_tagger(str(folder), trust_remote_code=True, quiet_thresholds=QUIET)


def test_cli_refuses_a_miscalibrated_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service itself runs the check: exit 3 and the reason in the log."""
    folder = build_tiny_ced(tmp_path / "loud", biases={"Baby cry, infant cry": 3.0})
    argv = ["--tagger", str(folder), "--trust-remote-code", "--data-dir", str(tmp_path / "d")]
    with caplog.at_level(logging.ERROR):
        code = run([*argv, "--no-zeroconf"])
    assert code == 3
    assert "hears 'Baby cry, infant cry' in silence" in caplog.text


def test_alarm_patterns_run_beside_a_model(ced_dir: Path) -> None:
    """With a model loaded (gated, as the service runs it), the T3 and T4 pattern detectors
    still hear smoke and CO alarms on every window."""
    tagger = load_tagger(
        str(ced_dir), trust_remote_code=True, alarm_patterns=True, activity_gate=True
    )
    assert isinstance(tagger, CombinedTagger)
    assert tagger.info.extra["activity_gate"] is True
    assert {"smoke_alarm", "co_alarm", "baby_cry"} <= set(tagger.info.categories)
    assert tagger.info.window_seconds == 5.0  # the patterns' window; the model takes its 1 s

    for name, audio in {
        "smoke_alarm": synth.smoke_alarm(12.0),
        "co_alarm": synth.co_alarm(14.0),
    }.items():
        frames = frames_for_clip(tagger, audio, f"clip-{name}")
        events = events_from_frames(frames, tagger.info.categories, duration=audio.size / 16000)
        tagger.forget(f"clip-{name}")
        assert {event.category for event in events} == {name}
    # Ended streams leave nothing behind, in the gate either.
    assert not tagger.model._seen


def test_an_offline_start_does_not_need_the_hub_for_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CED's configuration fetches its label file from another hub repository at every load;
    offline, with the model itself at hand, the service serves AudioSet's shipped copy."""
    import huggingface_hub.constants
    from transformers import AutoConfig

    folder = build_tiny_ced(tmp_path / "ced-base-like")
    code = folder / "configuration_ced.py"
    # As upstream: the label file lives in a hub repository, not in the model folder.
    code.write_text(
        code.read_text(encoding="utf-8").replace(str(folder.resolve()), "topel/ConvNeXt-Tiny-AT"),
        encoding="utf-8",
    )
    (folder / "class_labels_indices.csv").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(OSError):
        AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    tagger = load_tagger(str(folder), trust_remote_code=True, quiet_thresholds=QUIET)
    assert tagger.info.labels["smoke_alarm"] == ["Smoke detector, smoke alarm"]
