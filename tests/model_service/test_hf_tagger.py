"""Transformers taggers: tiny random AST models saved to a folder and loaded like a hub id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from devtools.tiny_models import DEFAULT_AST_LABELS, build_tiny_ast
from model_service import metrics
from model_service.__main__ import run
from model_service.api.app import create_app
from model_service.config import build_config
from model_service.detection.service import Service
from model_service.models.devices import (
    DeviceError,
    check_runs_or_float32,
    pick_dtype_name,
    resolve_device,
)
from model_service.models.taggers import Detection, TaggerLoadError, Window, load_tagger
from model_service.models.taggers.hf import (
    TransformersTagger,
    choose_window_seconds,
    is_audio_classifier,
    natural_window_seconds,
    use_sigmoid,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RATE = 16000
# DEFAULT_AST_LABELS minus "Music", "Vehicle" and "Silence", in category order.
EXPECTED = ("smoke_alarm", "glass_break", "dog_bark", "baby_cry", "speech", "knock")


def noise(seconds: float, seed: int = 0, level: float = 0.1) -> np.ndarray:
    """White noise at a level the event gate lets through."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * level).astype(np.float32)


def wav_bytes(audio: np.ndarray) -> bytes:
    """Encode audio as a 16-bit WAV file in memory."""
    buf = io.BytesIO()
    sf.write(buf, audio, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def ast_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AST whose "Bark" label always wins."""
    return build_tiny_ast(tmp_path_factory.mktemp("ast"), biases={"Bark": 4.0})


@pytest.fixture(scope="module")
def tagger(ast_dir: Path) -> TransformersTagger:
    """The tiny AST, loaded once through the same path a hub id takes."""
    loaded = load_tagger(str(ast_dir), device="auto")
    assert isinstance(loaded, TransformersTagger)
    return loaded


def test_loads_and_maps_labels_by_name(tagger: TransformersTagger) -> None:
    """Categories come from label names; unmapped labels are only counted."""
    info = tagger.info
    assert info.categories == EXPECTED
    assert info.backend == "transformers"
    assert info.device == "cpu"
    assert info.window_seconds == 1.0  # the tiny AST's extractor takes 100 frames
    assert info.hop_seconds == 0.5
    assert info.labels["dog_bark"] == ["Dog", "Bark"]
    wire = info.as_dict()
    assert wire["unmapped_labels"] == 3
    assert wire["num_labels"] == len(DEFAULT_AST_LABELS)
    assert wire["dtype"] == "float32"
    assert wire["model_type"] == "audio-spectrogram-transformer"


def test_predict_scores_every_category(tagger: TransformersTagger) -> None:
    """One dict per window, in order, with 0..1 scores and the winning label."""
    windows = [
        Window(noise(1.0, 1)),
        Window(noise(0.3, 2)),  # a stream's first, short window
        Window(noise(2.5, 3)),  # longer than the model takes: its newest second counts
        Window(np.full(RATE, np.nan, dtype=np.float32)),
    ]
    results = tagger.predict(windows)
    assert len(results) == len(windows)
    for result in results:
        assert tuple(result) == EXPECTED
        assert all(0.0 <= d.score <= 1.0 for d in result.values())
        assert result["dog_bark"].label == "Bark"
        assert result["dog_bark"].score > 0.9
        assert result["speech"].score < 0.1
    assert tagger.predict([]) == []


def test_batch_equals_one_at_a_time(tagger: TransformersTagger) -> None:
    """A window scores the same alone and in a batch (no cross-talk through padding)."""
    windows = [Window(noise(1.0, seed)) for seed in range(4)]
    together = tagger.scores(windows)
    alone = np.concatenate([tagger.scores([w]) for w in windows])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_other_label_order_and_spelling(tmp_path: Path) -> None:
    """Labels are matched by normalised name, so order and punctuation do not matter."""
    labels = ["bark", "Music", "SPEECH", "smoke_detector_smoke_alarm", "Doorbell"]
    folder = build_tiny_ast(tmp_path / "m", labels, biases={"bark": 4.0}, num_layers=1)
    tagger = TransformersTagger(str(folder))
    assert tagger.info.categories == ("smoke_alarm", "dog_bark", "speech", "doorbell")
    assert tagger.info.extra["unmapped_labels"] == 1
    result = tagger.predict([Window(noise(1.0))])[0]
    assert result["dog_bark"].label == "bark"
    assert result["dog_bark"].score > 0.9


def test_fast_filterbank_matches_the_extractor(tagger: TransformersTagger) -> None:
    """The batched torch filterbank gives the model what its own extractor would."""
    import torch

    assert tagger._fbank is not None
    audio = np.stack([noise(1.0, 5), noise(1.0, 6, level=0.001), np.zeros(RATE, np.float32)])
    audio[2, 8000:] = noise(0.5, 7)
    fast = tagger._fbank(torch.from_numpy(audio))["input_values"].numpy()
    reference = tagger.extractor(list(audio), sampling_rate=RATE, return_tensors="np")
    np.testing.assert_allclose(fast, reference["input_values"], atol=1e-3)


def test_plain_argument_helpers() -> None:
    """Model kind, activation, window length and device choice without loading anything."""
    assert is_audio_classifier("audio-spectrogram-transformer")
    assert is_audio_classifier("ced", {"AutoModelForAudioClassification": "modeling_ced.Ced"})
    assert not is_audio_classifier("ced", {"AutoModel": "modeling_ced.CedModel"})
    assert not is_audio_classifier("bert")
    assert not is_audio_classifier("wav2vec2", None, ["Wav2Vec2ForCTC"])
    assert is_audio_classifier("wav2vec2", None, ["Wav2Vec2ForSequenceClassification"])

    assert use_sigmoid(None)
    assert use_sigmoid("multi_label_classification")
    assert not use_sigmoid("single_label_classification")

    assert choose_window_seconds(10.24) == 1.0  # AudioSet AST: about 1 s of its 10 s
    assert choose_window_seconds(0.5) == 0.5  # never longer than the model takes
    assert choose_window_seconds(None) == 1.0
    assert choose_window_seconds(10.24, 2.0) == 2.0

    class Whisperish:
        sampling_rate = 16000
        n_samples = 480000

    class Anything:
        sampling_rate = 16000

    assert natural_window_seconds(Whisperish()) == 30.0
    assert natural_window_seconds(Anything()) is None

    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda"
    assert resolve_device("cuda:1", cuda_available=True, cuda_count=2) == "cuda:1"
    with pytest.raises(DeviceError, match="no CUDA"):
        resolve_device("cuda", cuda_available=False)
    with pytest.raises(DeviceError, match="2 CUDA"):
        resolve_device("cuda:2", cuda_available=True, cuda_count=2)
    assert pick_dtype_name("cuda", bf16_supported=True) == "bfloat16"
    assert pick_dtype_name("cuda:0", bf16_supported=False) == "float16"
    assert pick_dtype_name("cpu", bf16_supported=True) == "float32"


def test_half_precision_trouble_falls_back_to_float32_once() -> None:
    """Every torch backend loads through one rule: probe, convert to float32 once, re-probe."""
    import torch

    class NoHalf(RuntimeError):
        pass

    model = torch.nn.Linear(4, 2).to(torch.bfloat16)

    def probe() -> None:
        if model.weight.dtype != torch.float32:
            raise NoHalf("no bfloat16 kernel for this op")
        model(torch.zeros(1, 4))

    def to_float32() -> None:
        nonlocal model
        model = model.float()

    assert check_runs_or_float32("m", torch.bfloat16, probe, to_float32, DeviceError) == (
        torch.float32
    )
    assert model.weight.dtype == torch.float32
    # Already float32 and still failing: the loader's error, nothing converted.
    converted = []

    def broken() -> None:
        raise FloatingPointError("non-finite scores")

    with pytest.raises(DeviceError, match="m does not run: non-finite scores"):
        check_runs_or_float32("m", torch.float32, broken, lambda: converted.append(1), DeviceError)
    assert converted == []
    # Failing in both precisions: converted once, then the loader's error.
    with pytest.raises(DeviceError, match="does not run"):
        check_runs_or_float32("m", torch.float16, broken, lambda: converted.append(1), DeviceError)
    assert converted == [1]


def _write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_load_errors_name_the_problem(tmp_path: Path, ast_dir: Path) -> None:
    """Missing, foreign, label-less, remote-code and broken models fail with a clear message."""
    with pytest.raises(TaggerLoadError, match="does not exist"):
        load_tagger(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaggerLoadError, match=r"no config\.json"):
        load_tagger(str(tmp_path / "empty"))

    bert = _write_config(tmp_path / "bert", {"model_type": "bert", "architectures": ["BertModel"]})
    with pytest.raises(TaggerLoadError, match="bert model, not an audio-classification model"):
        load_tagger(str(bert))

    remote = _write_config(
        tmp_path / "remote",
        {"model_type": "ced", "auto_map": {"AutoConfig": "configuration_ced.CedConfig"}},
    )
    with pytest.raises(TaggerLoadError, match="--trust-remote-code"):
        load_tagger(str(remote))

    foreign = build_tiny_ast(tmp_path / "foreign", ["cat_a", "cat_b"], num_layers=1)
    with pytest.raises(TaggerLoadError, match="none of the 2 labels"):
        load_tagger(str(foreign))

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in ast_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(TaggerLoadError, match="cannot load the model weights"):
        load_tagger(str(broken))

    import torch

    if not torch.cuda.is_available():
        with pytest.raises(TaggerLoadError, match="no CUDA"):
            TransformersTagger(str(ast_dir), device="cuda")


def test_cli_stops_on_a_missing_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A missing model folder stops the start (exit 3) with a message naming it."""
    missing = tmp_path / "no-such-model"
    with caplog.at_level(logging.ERROR):
        code = run(["--tagger", str(missing), "--data-dir", str(tmp_path / "d"), "--no-zeroconf"])
    assert code == 3
    assert f"model folder {missing} does not exist" in caplog.text


class RecordingTagger:
    """Wraps a tagger and records the batch sizes it is given."""

    def __init__(self, inner: TransformersTagger) -> None:
        self.inner = inner
        self.info = inner.info
        self.sizes: list[int] = []

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        """Record the batch size, then score."""
        self.sizes.append(len(windows))
        return self.inner.predict(windows)

    def close(self) -> None:
        """The module's tagger is shared; nothing to release."""


async def test_service_batches_concurrent_clips(aiohttp_client, tmp_path: Path, tagger) -> None:
    """Concurrent uploads run in shared batches; info, classify and metrics agree."""
    recorder = RecordingTagger(tagger)
    config = build_config(None, {"data_dir": tmp_path / "data", "zeroconf": False}, environ={})
    service = Service.create(config, recorder)
    client = await aiohttp_client(create_app(service))

    info = await (await client.get("/v1/info")).json()
    # Live sources report unusual sounds whatever the tagger.
    assert [c["id"] for c in info["categories"]] == [*EXPECTED, "unusual_sound"]
    assert info["models"]["tagger"]["name"] == tagger.info.name
    assert info["models"]["tagger"]["unmapped_labels"] == 3

    clips = [wav_bytes(noise(1.0, seed)) for seed in range(12)]
    responses = await asyncio.gather(
        *(client.post("/v1/classify", data=c, headers={"Content-Type": "audio/wav"}) for c in clips)
    )
    bodies = [await r.json() for r in responses]
    assert all(r.status == 200 for r in responses), bodies
    for body in bodies:
        assert {e["category"] for e in body["events"]} == {"dog_bark"}
        assert body["events"][0]["label"] == "Bark"
    # Fewer batches than clips: windows of different uploads ran together.
    assert sum(recorder.sizes) >= len(clips)
    assert len(recorder.sizes) < len(clips), recorder.sizes

    text = await (await client.get("/metrics")).text()
    assert 'midasheng_batch_size_count{model="tagger"}' in text
    assert 'midasheng_queue_wait_seconds_count{model="tagger"}' in text
    assert metrics.BATCH_SIZE.labels(model="tagger")._sum.get() >= 12
