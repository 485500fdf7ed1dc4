"""Transformers audio-classification models as taggers (AST natively, CED/Dasheng heads as remote code).

Any model that `AutoModelForAudioClassification` loads can be a tagger. Its labels are
matched to categories by AudioSet name (`categories.map_labels`: case and punctuation do not
matter), never by index, so a checkpoint with its own label order still lands in the right
categories. Labels that map to no category are ignored: they are counted in `/v1/info`
(`unmapped_labels`) but never reported. A category's score is the highest score among its
labels, and its `label` is the label that scored it.

Windows are cut to the model's own input length (at most `DEFAULT_WINDOW_SECONDS`) and
featurised by the model's own feature extractor at 16 kHz. For `ASTFeatureExtractor` (which
computes one waveform at a time: Kaldi's fbank through torchaudio, else a per-frame numpy
loop) the same log-mel filterbank is computed batched in torch from the extractor's filters
and window (made as its numpy path makes them where it keeps none); a test checks that the
two agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from model_service import categories
from model_service.arrays import Array, Samples
from model_service.models.devices import (
    DeviceError,
    check_runs_or_float32,
    torch_device,
    torch_dtype,
)
from model_service.models.hub import check_model_folder, read_config
from model_service.models.taggers.base import (
    SAMPLE_RATE,
    Detection,
    TaggerInfo,
    TaggerLoadError,
    Window,
)

if TYPE_CHECKING:
    import torch

_LOGGER = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 1.0
"""Streaming detection wants about 1 s windows: long enough for a bark or a beep, short
enough that a sound's end is seen soon after it happens."""

DEFAULT_HOP_SECONDS = 0.5

# transformers' own audio-classification model types (MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING);
# anything else needs an `auto_map` entry (remote code such as CED).
_NATIVE_AUDIO_CLASSIFIERS = frozenset(
    {
        "audio-spectrogram-transformer",
        "data2vec-audio",
        "hubert",
        "sew",
        "sew-d",
        "unispeech",
        "unispeech-sat",
        "wav2vec2",
        "wav2vec2-bert",
        "wav2vec2-conformer",
        "wavlm",
        "whisper",
    }
)


def is_audio_classifier(
    model_type: str | None,
    auto_map: Mapping[str, Any] | None = None,
    architectures: Sequence[str] | None = None,
) -> bool:
    """True when a config describes a model `AutoModelForAudioClassification` can load."""
    if auto_map and "AutoModelForAudioClassification" in auto_map:
        return True
    if model_type not in _NATIVE_AUDIO_CLASSIFIERS:
        return False
    # wav2vec2 & co. are also CTC / pretraining checkpoints: when the config names its
    # architecture, it must be a classification head (an ASR model has no sound labels).
    if architectures:
        return any("Classification" in arch for arch in architectures)
    return True


def use_sigmoid(problem_type: str | None) -> bool:
    """Score activation: sigmoid unless the model says it is single-label.

    AudioSet heads (AST, CED, Dasheng) are multi-label and are trained with a sigmoid, but
    their configs usually leave `problem_type` unset; a softmax over 527 labels would spread
    every score so thin that no threshold is ever crossed.
    """
    return problem_type != "single_label_classification"


def config_says_probabilities(config: Any) -> bool | None:
    """Whether a config says its head already outputs probabilities (None: it does not say).

    CED's hub code applies the sigmoid inside its head for the `mean`, `token` and `dm`
    poolings (the released checkpoints use `mean`) and returns raw logits only for `logit`:
    a second sigmoid would put every score at 0.5 or more.
    """
    pooling = getattr(config, "pooling", None)
    if getattr(config, "model_type", None) == "ced" and isinstance(pooling, str):
        return pooling != "logit"
    return None


def looks_like_probabilities(outputs: Array) -> bool:
    """True when every output lies in [0, 1]: a trained multi-label head's logits do not.

    AudioSet logit heads put most of their 527 outputs far below zero on any input (rare
    classes), so a probe batch whose outputs all lie in [0, 1] came through a sigmoid.
    """
    return bool(np.all((outputs >= 0.0) & (outputs <= 1.0)))


def restore_audioset_names(labels: Sequence[str]) -> list[str]:
    """AudioSet's full names for a model whose 527 labels are AudioSet's, full or cut.

    CED's configuration cuts each name at its first comma ("Smoke detector"); matching
    works on cut names too, but users should see the name the category documents.
    """
    names = categories.audioset_labels()
    if len(labels) != len(names):
        return list(labels)
    same = sum(
        categories.normalize_label(label)
        in {
            categories.normalize_label(full),
            categories.normalize_label(categories.cut_at_comma(full)),
        }
        for label, full in zip(labels, names, strict=True)
    )
    return list(names) if same >= 0.95 * len(names) else list(labels)


def natural_window_seconds(extractor: Any) -> float | None:
    """The input length a feature extractor pads or cuts to, in seconds (None: any length)."""
    sampling_rate = getattr(extractor, "sampling_rate", SAMPLE_RATE) or SAMPLE_RATE
    n_samples = getattr(extractor, "n_samples", None)
    if isinstance(n_samples, int) and n_samples > 0:
        return n_samples / sampling_rate
    chunk = getattr(extractor, "chunk_length", None)
    if isinstance(chunk, (int, float)) and chunk > 0:
        return float(chunk)
    max_length = getattr(extractor, "max_length", None)
    if type(extractor).__name__ == "ASTFeatureExtractor" and isinstance(max_length, int):
        return max_length * 0.01  # AST's frames are 10 ms apart
    return None


def choose_window_seconds(natural: float | None, requested: float | None = None) -> float:
    """Window length: the requested one, else about 1 s, never more than the model takes.

    A window longer than the extractor's input would be truncated by it, and AST keeps the
    *first* frames, so the newest audio (the part the event logic scores) would be lost.
    """
    window = requested if requested is not None else DEFAULT_WINDOW_SECONDS
    if natural is not None:
        window = min(window, natural)
    # Whole 10 ms frames keep frame boundaries identical across overlapping windows.
    return max(0.1, math.floor(window * 100 + 1e-6) / 100)


def serve_shipped_labels(spec: str) -> bool:
    """Let CED's configuration find AudioSet's label file when the hub cannot deliver it.

    CED's configuration reads `class_labels_indices.csv` from another hub repository every
    time it loads, so a model cached for offline use still fails to start offline unless
    that file happens to be cached too. Its remote-code module is loaded here first (and
    reused by transformers while its files are unchanged), and its `cached_file` falls back
    to the copy the service ships, which has the same format, when the hub has none.
    True when the fallback is in place.
    """
    import sys

    from transformers import PretrainedConfig
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    try:
        config_dict, _ = PretrainedConfig.get_config_dict(spec)
        reference = (config_dict.get("auto_map") or {}).get("AutoConfig")
        if config_dict.get("model_type") != "ced" or not isinstance(reference, str):
            return False
        module = sys.modules[get_class_from_dynamic_module(reference, spec).__module__]
    except (OSError, ValueError, KeyError, ImportError):  # the real load reports what is wrong
        return False
    original = getattr(module, "cached_file", None)
    if original is None or getattr(original, "_shipped_labels", False):
        return original is not None

    def cached_file(path_or_repo_id: Any, filename: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(path_or_repo_id, filename, *args, **kwargs)
        except OSError:
            if filename != "class_labels_indices.csv":
                raise
            _LOGGER.info(
                "%s's label file is not reachable (%s); using AudioSet's shipped copy",
                spec,
                path_or_repo_id,
            )
            return str(categories.audioset_labels_file())

    cached_file._shipped_labels = True  # type: ignore[attr-defined]
    module.__dict__["cached_file"] = cached_file
    return True


class _AstFilterbank:
    """Batched torch version of `ASTFeatureExtractor`'s numpy log-mel filterbank.

    Same steps as `transformers.audio_utils.spectrogram` with AST's arguments (25 ms frames
    every 10 ms, DC offset removal, pre-emphasis 0.97, symmetric Hann window, 512-point FFT,
    power spectrum, the extractor's kaldi mel filters, natural log), then the extractor's own
    zero padding to `max_length` frames and normalisation.
    """

    FRAME = 400
    HOP = 160
    FFT = 512
    PREEMPHASIS = 0.97
    MEL_FLOOR = 1.192092955078125e-07

    def __init__(self, extractor: Any, device: str) -> None:
        import torch

        mel_filters, window = self._filters(extractor)
        self.mel = torch.as_tensor(mel_filters, dtype=torch.float32).to(device)
        self.window = torch.as_tensor(window, dtype=torch.float32).to(device)
        self.max_length = int(extractor.max_length)
        self.do_normalize = bool(extractor.do_normalize)
        self.mean = float(extractor.mean)
        self.std = float(extractor.std)

    @classmethod
    def _filters(cls, extractor: Any) -> tuple[Array, Array]:
        """The extractor's mel filters and window; made as it makes them where it has none.

        With torchaudio installed the extractor computes Kaldi's fbank one waveform at a time
        and keeps no filters; its numpy path (built to match Kaldi) makes them like this.
        """
        if hasattr(extractor, "mel_filters") and hasattr(extractor, "window"):
            return np.asarray(extractor.mel_filters), np.asarray(extractor.window)
        from transformers.audio_utils import mel_filter_bank, window_function

        rate = int(extractor.sampling_rate)
        mel_filters = mel_filter_bank(
            num_frequency_bins=cls.FFT // 2 + 1,
            num_mel_filters=int(extractor.num_mel_bins),
            min_frequency=20,
            max_frequency=rate // 2,
            sampling_rate=rate,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
        return mel_filters, window_function(cls.FRAME, "hann", periodic=False)

    @classmethod
    def applies(cls, extractor: Any) -> bool:
        """True for AST's extractor at 16 kHz (its numpy or its torchaudio path)."""
        return (
            type(extractor).__name__ == "ASTFeatureExtractor"
            and getattr(extractor, "sampling_rate", None) == SAMPLE_RATE
            and isinstance(getattr(extractor, "num_mel_bins", None), int)
        )

    def __call__(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of a (batch, samples) float32 tensor, as the model's `input_values`."""
        import torch

        frames = audio.unfold(1, self.FRAME, self.HOP)
        # One (batch, frames, 400) copy, then in place: this runs on every hop of every
        # source, and the big intermediates are what it costs.
        x = frames - frames.mean(dim=-1, keepdim=True)
        x[..., 1:] -= self.PREEMPHASIS * x[..., :-1]
        x[..., 0] *= 1.0 - self.PREEMPHASIS
        x *= self.window
        spectrum = torch.fft.rfft(x, n=self.FFT)
        power = torch.view_as_real(spectrum).square_().sum(dim=-1)
        fbank = torch.clamp(power @ self.mel, min=self.MEL_FLOOR).log()
        count = fbank.shape[1]
        if count < self.max_length:
            fbank = torch.nn.functional.pad(fbank, (0, 0, 0, self.max_length - count))
        elif count > self.max_length:
            fbank = fbank[:, : self.max_length]
        if self.do_normalize:
            fbank = (fbank - self.mean) / (self.std * 2)
        return {"input_values": fbank}


class _CedFeatures:
    """CED's features (torchaudio MelSpectrogram, then AmplitudeToDB at top_db), per window.

    CED's own extractor builds both transforms at every call and clamps at `top_db` below
    the loudest value of the whole batch; here the transforms are built once, run on the
    whole batch (the spectrogram is per row anyway), and the clamp takes each window's own
    maximum, which is what the extractor gives a window alone (a test checks both).
    """

    TOP_DB = 120.0

    def __init__(self, extractor: Any, device: str) -> None:
        import torchaudio.transforms as audio_transforms

        self.mel = audio_transforms.MelSpectrogram(
            f_min=extractor.f_min,
            sample_rate=extractor.sampling_rate,
            win_length=extractor.win_size,
            center=extractor.center,
            n_fft=extractor.n_fft,
            f_max=extractor.f_max,
            hop_length=extractor.hop_size,
            n_mels=extractor.feature_size,
        ).to(device)
        self.to_db = audio_transforms.AmplitudeToDB(top_db=None).to(device)

    @classmethod
    def applies(cls, extractor: Any) -> bool:
        """True for CED's extractor (remote code, known by its name and settings)."""
        return type(extractor).__name__ == "CedFeatureExtractor" and all(
            hasattr(extractor, name)
            for name in ("f_min", "f_max", "win_size", "center", "n_fft", "hop_size")
        )

    def __call__(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of a (batch, samples) float32 tensor, as the model's `input_values`."""
        import torch

        db = self.to_db(self.mel(audio.float()))
        floor = db.amax(dim=(-2, -1), keepdim=True) - self.TOP_DB
        return {"input_values": torch.maximum(db, floor)}


class TransformersTagger:
    """A transformers audio-classification model (hub id or local folder) as a batched tagger."""

    def __init__(
        self,
        spec: str,
        device: str = "auto",
        trust_remote_code: bool = False,
        *,
        window_seconds: float | None = None,
        hop_seconds: float = DEFAULT_HOP_SECONDS,
    ) -> None:
        """Load the model, its feature extractor and label mapping; raise TaggerLoadError."""
        import torch

        self._torch = torch
        self.spec = spec
        try:
            self.device = torch_device(device)
        except DeviceError as err:
            raise TaggerLoadError(str(err)) from err

        config = self._load_config(spec, trust_remote_code)
        labels = restore_audioset_names(self._labels(spec, config))
        mapping = categories.map_labels(labels)
        if not mapping:
            raise TaggerLoadError(
                f"none of the {len(labels)} labels of {spec} is an AudioSet name that a "
                "category uses (e.g. 'Speech', 'Bark', 'Smoke detector, smoke alarm'), so it "
                "could detect nothing; use an AudioSet-trained model"
            )
        self.labels = labels
        index = {label: i for i, label in enumerate(labels)}
        self._category_indices = {
            cid: [index[label] for label in names] for cid, names in mapping.items()
        }
        self._sigmoid = use_sigmoid(getattr(config, "problem_type", None))
        self._probabilities = config_says_probabilities(config)

        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(  # type: ignore[no-untyped-call]
                spec, trust_remote_code=trust_remote_code
            )
        except Exception as err:
            raise TaggerLoadError(f"cannot load the feature extractor of {spec}: {err}") from err
        extractor_rate = getattr(self.extractor, "sampling_rate", SAMPLE_RATE)
        if extractor_rate not in (None, SAMPLE_RATE):
            raise TaggerLoadError(
                f"{spec} expects {extractor_rate} Hz audio; taggers get 16000 Hz audio"
            )

        self.dtype = torch_dtype(self.device)
        try:
            model = AutoModelForAudioClassification.from_pretrained(
                spec, trust_remote_code=trust_remote_code, dtype=self.dtype
            )
        except Exception as err:
            raise TaggerLoadError(f"cannot load the model weights of {spec}: {err}") from err
        self.model = model.to(self.device).eval()

        window = choose_window_seconds(natural_window_seconds(self.extractor), window_seconds)
        self.window_samples = round(window * SAMPLE_RATE)
        self._fbank: _AstFilterbank | _CedFeatures | None = None
        if _AstFilterbank.applies(self.extractor):
            self._fbank = _AstFilterbank(self.extractor, self.device)
        elif _CedFeatures.applies(self.extractor):
            self._fbank = _CedFeatures(self.extractor, self.device)
        self._per_window = False
        self._check_runs()
        self._per_window = self._extractor_mixes_batch()
        if self._probabilities is None:
            self._probabilities = looks_like_probabilities(self._probe_outputs())

        unmapped = len(labels) - sum(len(v) for v in mapping.values())
        self.info = TaggerInfo(
            name=spec,
            backend="transformers",
            categories=tuple(mapping),
            window_seconds=window,
            hop_seconds=hop_seconds,
            device=self.device,
            labels=mapping,
            extra={
                "model_type": getattr(config, "model_type", None),
                "dtype": str(self.dtype).removeprefix("torch."),
                "num_labels": len(labels),
                "unmapped_labels": unmapped,
                "outputs": "probabilities" if self._probabilities else "logits",
                "features": self._features_kind(),
            },
        )
        _LOGGER.info(
            "Tagger %s on %s (%s): %d of %d labels map to %d categories, %.2f s windows",
            spec,
            self.device,
            self.info.extra["dtype"],
            len(labels) - unmapped,
            len(labels),
            len(mapping),
            window,
        )

    @staticmethod
    def _load_config(spec: str, trust_remote_code: bool) -> Any:
        check_model_folder(spec, TaggerLoadError)
        if trust_remote_code:
            serve_shipped_labels(spec)
        config = read_config(spec, trust_remote_code=trust_remote_code, error=TaggerLoadError)
        model_type = getattr(config, "model_type", None)
        auto_map = getattr(config, "auto_map", None)
        if not is_audio_classifier(model_type, auto_map, getattr(config, "architectures", None)):
            raise TaggerLoadError(
                f"{spec} is a {model_type or 'unknown'} model, not an audio-classification model"
            )
        return config

    @staticmethod
    def _labels(spec: str, config: Any) -> list[str]:
        id2label = getattr(config, "id2label", None) or {}
        try:
            labels = [str(id2label[i]) for i in range(len(id2label))]
        except KeyError as err:
            raise TaggerLoadError(f"{spec} has gaps in its id2label table") from err
        if not labels or all(label.startswith("LABEL_") for label in labels):
            raise TaggerLoadError(
                f"{spec} has no label names (id2label), so no category can be found"
            )
        return labels

    def _check_runs(self) -> None:
        """Run one silent window; on half-precision trouble fall back to fp32."""
        torch = self._torch
        silent = np.zeros((1, self.window_samples), dtype=np.float32)

        def probe() -> None:
            if not bool(torch.isfinite(self._logits(silent)).all()):
                raise FloatingPointError("non-finite scores")

        def to_float32() -> None:
            self.dtype = torch.float32
            self.model = self.model.float()

        self.dtype = check_runs_or_float32(
            self.spec, self.dtype, probe, to_float32, TaggerLoadError
        )

    def _probe_audio(self) -> Array:
        """Silence, quiet noise and a loud 3 kHz tone: inputs any extractor must keep apart."""
        t = np.arange(self.window_samples, dtype=np.float32) / SAMPLE_RATE
        noise = np.random.default_rng(0).standard_normal(self.window_samples).astype(np.float32)
        tone = 0.5 * np.sin(2 * np.pi * 3000 * t, dtype=np.float32)
        return np.stack([np.zeros_like(t), 0.001 * noise, tone])

    def _extractor_mixes_batch(self) -> bool:
        """True when a window's features depend on its batchmates.

        CED's extractor clamps at `top_db` below the loudest value of the whole batch
        (torchaudio's AmplitudeToDB on a 3-D tensor), so batched with a loud tone a quiet
        window's features shift by tens of dB. Such an extractor gets one window per call.
        """
        if self._fbank is not None:
            return False  # per window by construction (and tested against the extractor)
        probe = self._probe_audio()
        together = self._features(probe)
        for row in range(probe.shape[0]):
            alone = self._features(probe[row : row + 1])
            for key, value in alone.items():
                if not self._torch.allclose(together[key][row : row + 1], value, atol=1e-4):
                    _LOGGER.info(
                        "The feature extractor of %s mixes a batch's windows; featurising "
                        "one window at a time",
                        self.spec,
                    )
                    return True
        return False

    def _features_kind(self) -> str:
        if isinstance(self._fbank, _CedFeatures):
            return "batched, normalised per window"
        return "one window per call" if self._per_window else "batched"

    def _probe_outputs(self) -> Array:
        return self._logits(self._probe_audio()).cpu().numpy()

    def _batch_audio(self, windows: Sequence[Window]) -> Array:
        """Stack windows to one length: the newest `window_samples`, silence before a start."""
        batch = np.zeros((len(windows), self.window_samples), dtype=np.float32)
        for row, window in enumerate(windows):
            audio = np.asarray(window.audio, dtype=np.float32)[-self.window_samples :]
            if audio.size:
                batch[row, -audio.size :] = audio
        # Float uploads may carry NaN/inf; the model must never see them.
        return np.nan_to_num(batch, nan=0.0, posinf=1.0, neginf=-1.0)

    def _features(self, audio: Samples) -> dict[str, torch.Tensor]:
        torch = self._torch
        if self._fbank is not None:
            return self._fbank(torch.from_numpy(audio).to(self.device))
        if self._per_window and len(audio) > 1:
            rows = [self._features(audio[i : i + 1]) for i in range(len(audio))]
            return {key: torch.cat([row[key] for row in rows]) for key in rows[0]}
        features = self.extractor(list(audio), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return {key: value.to(self.device) for key, value in features.items()}

    def _logits(self, audio: Samples) -> torch.Tensor:
        with self._torch.inference_mode():
            inputs = {
                key: value.to(self.dtype) if value.is_floating_point() else value
                for key, value in self._features(audio).items()
            }
            logits: torch.Tensor = self.model(**inputs).logits.float()
            return logits

    def scores(self, windows: Sequence[Window]) -> Array:
        """Per-label scores (0..1) for each window, as (windows, labels)."""
        torch = self._torch
        outputs = self._logits(self._batch_audio(windows))
        if self._probabilities:
            # Never squash twice: the head already applied its sigmoid.
            clamped: Array = outputs.clamp(0.0, 1.0).cpu().numpy()
            return clamped
        probs = torch.sigmoid(outputs) if self._sigmoid else torch.softmax(outputs, dim=-1)
        result: Array = probs.cpu().numpy()
        return result

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        """Score each window; one dict (category id -> Detection) per window, same order."""
        if not windows:
            return []
        probs = self.scores(windows)
        results: list[dict[str, Detection]] = []
        for row in probs:
            found: dict[str, Detection] = {}
            for cid, indices in self._category_indices.items():
                sub = row[indices]
                best = int(np.argmax(sub))
                found[cid] = Detection(score=float(sub[best]), label=self.labels[indices[best]])
            results.append(found)
        return results

    def close(self) -> None:
        """Drop the model (and free GPU memory)."""
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
