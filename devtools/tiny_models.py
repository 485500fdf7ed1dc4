"""Tiny random transformers models, built offline and saved like a hub checkpoint.

Tests and benchmarks load these folders through the same `from_pretrained` code path that a
hub id takes, so the real loading, feature extraction, batching and generation code runs
without downloading anything. Each builder takes a folder, writes the model there and
returns the folder. Benchmarks import this module with the repository root on `sys.path`
(`from devtools.tiny_models import ...`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

# A few AudioSet names per category plus labels that map to no category ("Music",
# "Vehicle", "Silence"), so tests see both mapped and unmapped labels.
DEFAULT_AST_LABELS: tuple[str, ...] = (
    "Speech",
    "Dog",
    "Bark",
    "Smoke detector, smoke alarm",
    "Shatter",
    "Knock",
    "Music",
    "Vehicle",
    "Silence",
    "Baby cry, infant cry",
)

# Chat and audio special tokens of the Qwen2 family (Qwen2-Audio, MiDashengLM).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
)

_CORPUS = (
    "a dog barks in the distance while a car passes by",
    "the smoke alarm beeps three times and then stops",
    "someone knocks on the door and a baby starts to cry",
    "water runs from the kitchen tap for a long time",
    "you are a helpful assistant. what was that sound? caption the audio.",
    "glass breaks and a person screams, then music plays quietly",
    "transcribe the speech into text. answer the question about the audio.",
    "system user assistant audio the a an is was of to in and it that",
    # The prompts the service sends, so they tokenize to a realistic handful of tokens.
    "You are a helpful assistant. You are a helpful language and speech assistant.",
    "Audio 1: What can you hear? Describe the audio in one sentence. Caption the audio.",
    "Transcribe the speech in this audio into text. Language: en. Transcribe the speech into text",
    "What was that noise? Is a dog barking? Is the smoke alarm beeping?",
    "Did someone knock on the door, and if so how many times?",
)


def build_tiny_ast(
    path: Path | str,
    labels: Sequence[str] = DEFAULT_AST_LABELS,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    num_mel_bins: int = 64,
    max_length: int = 100,
    biases: Mapping[str, float] | None = None,
    problem_type: str | None = None,
    seed: int = 0,
) -> Path:
    """Save a random `ASTForAudioClassification` whose labels are `labels`.

    `max_length` is in 10 ms feature frames (100 = 1 s). `biases` sets the classifier bias
    of named labels, which makes a label win whatever the audio (the weights are random, so
    tests use this to know what the model will say).
    """
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(seed)
    folder = Path(path)
    config = ASTConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 2,
        num_mel_bins=num_mel_bins,
        max_length=max_length,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=problem_type,
    )
    model = ASTForAudioClassification(config).eval()
    with torch.no_grad():
        # Small random logits: without a bias every label stays near 0.5 after a sigmoid.
        model.classifier.dense.weight.mul_(0.1)
        model.classifier.dense.bias.fill_(-4.0)
        for label, bias in (biases or {}).items():
            model.classifier.dense.bias[list(labels).index(label)] = bias
    model.save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=num_mel_bins, max_length=max_length).save_pretrained(folder)
    return folder


def build_qwen_tokenizer(path: Path | str, *, vocab_size: int = 600) -> Path:
    """Train a small byte-level BPE tokenizer with Qwen's chat and audio tokens; save it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = Path(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        # The audio tokens become tokenizer attributes, which is where processors look first.
        extra_special_tokens={
            "audio_token": "<|AUDIO|>",
            "audio_bos_token": "<|audio_bos|>",
            "audio_eos_token": "<|audio_eos|>",
        },
    )
    fast.save_pretrained(folder)
    return folder


def build_tiny_qwen2_audio(
    path: Path | str,
    *,
    hidden_size: int = 32,
    num_layers: int = 1,
    audio_d_model: int = 16,
    audio_layers: int = 1,
    chunk_seconds: int = 2,
    never_stop: bool = False,
    seed: int = 0,
) -> Path:
    """Save a random `Qwen2AudioForConditionalGeneration` with its processor and tokenizer.

    The Whisper-style feature extractor pads every clip to `chunk_seconds` (30 s in the real
    model; 2 s keeps the audio prompt at 50 tokens). `never_stop` suppresses the special tokens so
    every generation runs to `max_new_tokens` and decodes to non-empty text (benchmarks compare
    equal amounts of work; tests see text).
    """
    import torch
    from transformers import (
        AutoTokenizer,
        GenerationConfig,
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        Qwen2Config,
        WhisperFeatureExtractor,
    )

    torch.manual_seed(seed)
    folder = Path(path)
    build_qwen_tokenizer(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    frames = chunk_seconds * 100
    audio_config = Qwen2AudioEncoderConfig(
        num_mel_bins=128,
        encoder_layers=audio_layers,
        encoder_attention_heads=2,
        encoder_ffn_dim=audio_d_model * 2,
        d_model=audio_d_model,
        # The encoder checks that its input has exactly 2 * max_source_positions frames.
        max_source_positions=frames // 2,
    )
    text_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
    )
    config = Qwen2AudioConfig(
        audio_config=audio_config.to_dict(),
        text_config=text_config.to_dict(),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    model = Qwen2AudioForConditionalGeneration(config).eval()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # Special and whitespace-only tokens: what a random model would otherwise "say" forever.
    silent = [i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()]
    special = sorted({*silent, *(tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS)})
    model.generation_config = GenerationConfig(
        eos_token_id=eos,
        pad_token_id=pad,
        do_sample=False,
        max_new_tokens=16,
        suppress_tokens=special if never_stop else None,
    )
    model.save_pretrained(folder)
    extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, chunk_length=chunk_seconds
    )
    Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


# Languages of the tiny Whisper (each gets its <|xx|> token) and the text its BPE learns.
WHISPER_LANGUAGES: tuple[str, ...] = ("en", "de")
_WHISPER_CORPUS = (
    "turn on the kitchen light",
    "turn off the bedroom lamp",
    "what time is it",
    "schalte das licht in der küche ein",
    "wie spät ist es",
    "open the garage door",
)


def build_tiny_whisper(
    path: Path | str,
    *,
    languages: Sequence[str] = WHISPER_LANGUAGES,
    d_model: int = 16,
    num_layers: int = 1,
    chunk_seconds: int = 2,
    max_new_tokens: int = 8,
    seed: int = 0,
) -> Path:
    """Save a random `WhisperForConditionalGeneration` with its processor and a tiny tokenizer.

    The tokenizer is a byte-level BPE trained here on a few sentences, wrapped as a
    `WhisperTokenizer` with Whisper's special tokens (<|startoftranscript|>, one
    <|xx|> per language, <|transcribe|>, <|notimestamps|>, <|endoftext|> ...). The
    generation config carries `lang_to_id` / `task_to_id` like the hub checkpoints', so
    language forcing runs the real code path. `chunk_seconds` shortens Whisper's 30 s window
    (2 s keeps the encoder at 100 positions).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    torch.manual_seed(seed)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_WHISPER_CORPUS, trainer=trainer)
    bpe.model.save(str(folder))  # vocab.json and merges.txt, the files WhisperTokenizer reads
    specials = [
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in languages),
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    tokenizer = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in specials}
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=d_model,
        encoder_layers=num_layers,
        decoder_layers=num_layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=d_model * 2,
        decoder_ffn_dim=d_model * 2,
        # The encoder checks its input has exactly 2 * max_source_positions frames.
        max_source_positions=chunk_seconds * 100 // 2,
        max_target_positions=64,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=32,
        max_new_tokens=max_new_tokens,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in languages},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        return_timestamps=False,
    )
    model.save_pretrained(folder)
    extractor = WhisperFeatureExtractor(
        feature_size=80, sampling_rate=16000, chunk_length=chunk_seconds
    )
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


# -- MiDashengLM (mispeech/midashenglm-7b-1021-*, -0.6b-*) ----------------------------------
#
# A stand-in for MiDashengLM's hub code, written from its upstream contract (the hub's
# processing code and vLLM's model): the configuration holds `audio_encoder_config`,
# `text_config` (a Qwen2 decoder for 7B, Qwen3 for 0.6B), `subsample_factor` and
# `audio_token_id`; the processor takes `text` + `audio` through a Wav2Vec2FeatureExtractor
# that must not normalise, expands each `<|AUDIO|>` to
# `calculate_mel_frames_dasheng(length)` tokens (STFT frames of 512 every 160 samples,
# centred, then / 4 in the encoder and / `subsample_factor` in the projector), wraps them in
# `<|audio_bos|>`/`<|audio_eos|>` unless the text already does, pads text on the left and
# returns `input_ids`, `attention_mask`, `input_values` and `audio_length`. The model puts
# one projected audio frame on each audio token and refuses a count that does not match,
# so wrong arithmetic anywhere fails here as it would on the real model.

_MDL_CONFIGURATION = """
from transformers import AutoConfig, PretrainedConfig


class DashengConfig(PretrainedConfig):
    model_type = "midashenglm_dasheng_encoder"

    def __init__(self, embed_dim=16, **kwargs):
        self.embed_dim = embed_dim
        super().__init__(**kwargs)


class MiDashengLMConfig(PretrainedConfig):
    model_type = "midashenglm"

    def __init__(self, audio_encoder_config=None, subsample_factor=5, text_config=None,
                 audio_token_id=None, **kwargs):
        self.audio_encoder_config = DashengConfig(**(audio_encoder_config or {}))
        self.subsample_factor = subsample_factor
        text = dict(text_config or {"model_type": "qwen2"})
        self.text_config = AutoConfig.for_model(**text)
        self.audio_token_id = audio_token_id
        super().__init__(**kwargs)
"""

_MDL_MODELING = """
import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from .configuration_midashenglm import MiDashengLMConfig


def calculate_mel_frames_dasheng(audio_length_samples, n_fft=512, hop_size=160,
                                 dasheng_subsampling=4, center=True, model_subsampling=5):
    if center:
        audio_length_samples = audio_length_samples + n_fft
    return int(1 + ((audio_length_samples - n_fft) / hop_size)) // dasheng_subsampling // model_subsampling


class MiDashengLMModel(PreTrainedModel):
    config_class = MiDashengLMConfig

    def __init__(self, config):
        super().__init__(config)
        self.decoder = AutoModelForCausalLM.from_config(config.text_config)
        dim = config.audio_encoder_config.embed_dim
        self.frontend = nn.Linear(512, dim)  # one STFT-sized frame -> one encoder frame
        self.audio_projector = nn.Linear(dim * config.subsample_factor, self.decoder.config.hidden_size)
        self.post_init()

    def _audio(self, input_values, audio_length):
        padded = nn.functional.pad(input_values, (256, 256))
        frames = padded.unfold(1, 512, 160)  # (batch, 1 + samples // 160, 512)
        x = self.frontend(frames)
        x = x[:, : (x.shape[1] // 4) * 4].reshape(x.shape[0], -1, 4, x.shape[-1]).mean(2)
        k = self.config.subsample_factor
        x = x[:, : (x.shape[1] // k) * k].reshape(x.shape[0], -1, k * x.shape[-1])
        x = self.audio_projector(x)
        counts = [max(1, calculate_mel_frames_dasheng(int(n), model_subsampling=k)) for n in audio_length]
        return [x[row, :count] for row, count in enumerate(counts)]

    def _embeds(self, input_ids, input_values, audio_length):
        embeds = self.decoder.get_input_embeddings()(input_ids)
        for row, audio in enumerate(self._audio(input_values.float(), audio_length)):
            where = (input_ids[row] == self.config.audio_token_id).nonzero().squeeze(-1)
            if where.numel() != audio.shape[0]:
                raise ValueError(f"{where.numel()} audio tokens for {audio.shape[0]} audio frames")
            embeds[row, where] = audio.to(embeds.dtype)
        return embeds

    def forward(self, input_ids, attention_mask=None, input_values=None, audio_length=None, **kwargs):
        embeds = self._embeds(input_ids, input_values, audio_length)
        return self.decoder(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, input_values=None, audio_length=None, **kwargs):
        embeds = self._embeds(input_ids, input_values, audio_length)
        return self.decoder.generate(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)
"""

_MDL_PROCESSING = """
import torch
from transformers import BatchFeature, ProcessorMixin

from .modeling_midashenglm import calculate_mel_frames_dasheng


class MiDashengLMProcessor(ProcessorMixin):
    attributes = ["feature_extractor", "tokenizer"]
    feature_extractor_class = "Wav2Vec2FeatureExtractor"
    tokenizer_class = "AutoTokenizer"

    def __init__(self, feature_extractor=None, tokenizer=None, model_subsampling=5, chat_template=None,
                 audio_token="<|AUDIO|>", audio_bos_token="<|audio_bos|>", audio_eos_token="<|audio_eos|>"):
        assert not feature_extractor.do_normalize, "This model does not use normalization."
        self.audio_token, self.audio_bos_token, self.audio_eos_token = audio_token, audio_bos_token, audio_eos_token
        self.model_subsampling = model_subsampling
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)

    def __call__(self, text=None, audio=None, padding=True, padding_side="left", return_tensors="pt", **kwargs):
        if isinstance(text, str):
            text = [text]
        if audio is not None:
            if sum(sample.count(self.audio_token) for sample in text) != len(audio):
                raise ValueError("one audio per audio token")
            features = self.feature_extractor(audio, sampling_rate=self.feature_extractor.sampling_rate,
                                              padding=True, return_attention_mask=True, return_tensors="pt")
            lengths = features.pop("attention_mask").sum(-1).tolist()
            features["audio_length"] = torch.tensor(lengths).long()
            expanded = []
            for sample in text:
                parts = []
                while self.audio_token in sample:
                    count = calculate_mel_frames_dasheng(lengths.pop(0), model_subsampling=self.model_subsampling)
                    tokens = self.audio_token * count
                    start = sample.find(self.audio_token)
                    end = start + len(self.audio_token)
                    has_bos = sample[start - len(self.audio_bos_token):start] == self.audio_bos_token
                    has_eos = sample[end:end + len(self.audio_eos_token)] == self.audio_eos_token
                    if not has_bos and not has_eos:
                        tokens = self.audio_bos_token + tokens + self.audio_eos_token
                    parts.append(tokens)
                    sample = sample.replace(self.audio_token, "<placeholder>", 1)
                while "<placeholder>" in sample:
                    sample = sample.replace("<placeholder>", parts.pop(0), 1)
                expanded.append(sample)
            text = expanded
        inputs = self.tokenizer(text, padding=padding, padding_side=padding_side, return_tensors=return_tensors)
        if audio is not None:
            inputs.update(features)
        return BatchFeature(data={**inputs}, tensor_type=return_tensors)
"""

MIDASHENGLM_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_midashenglm(
    path: Path | str,
    *,
    decoder: str = "qwen2",
    hidden_size: int = 32,
    chat_template: str | None = None,
    generation: Mapping[str, object] | None = None,
    seed: int = 0,
) -> Path:
    """Save a MiDashengLM-shaped remote-code folder (see the note above).

    `decoder` is "qwen2" (the 7B's Qwen2.5-Omni thinker) or "qwen3" (the 0.6B). `generation`
    is written as the checkpoint's `generation_config.json`, as a model card's settings are.
    """
    import importlib.util
    import json
    import sys

    import torch
    from transformers import AutoTokenizer, GenerationConfig, Wav2Vec2FeatureExtractor

    torch.manual_seed(seed)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (
        ("configuration_midashenglm.py", _MDL_CONFIGURATION),
        ("modeling_midashenglm.py", _MDL_MODELING),
        ("processing_midashenglm.py", _MDL_PROCESSING),
    ):
        (folder / name).write_text(source.lstrip(), encoding="utf-8")
    build_qwen_tokenizer(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    template = chat_template or MIDASHENGLM_CHAT_TEMPLATE
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    text_config: dict[str, object] = {
        "model_type": decoder,
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 2,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    }
    if decoder == "qwen3":
        text_config["head_dim"] = hidden_size // 2
    config = {
        "model_type": "midashenglm",
        "architectures": ["MiDashengLMModel"],
        "auto_map": {
            "AutoConfig": "configuration_midashenglm.MiDashengLMConfig",
            "AutoModelForCausalLM": "modeling_midashenglm.MiDashengLMModel",
        },
        "audio_encoder_config": {"embed_dim": 16},
        "subsample_factor": 5,
        "text_config": text_config,
        "audio_token_id": tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    from transformers import AutoConfig, AutoModelForCausalLM

    model_config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=True)
    model.save_pretrained(folder)
    if generation:
        GenerationConfig(**generation).save_pretrained(folder)

    # The processor imports the modeling file as a sibling, as remote code does.
    package = f"_mdl_standin_{abs(hash(str(folder)))}"
    spec = importlib.util.spec_from_file_location(
        package, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    (folder / "__init__.py").touch()
    assert spec is not None and spec.loader is not None
    sys.modules[package] = importlib.util.module_from_spec(spec)
    processing = importlib.import_module(f"{package}.processing_midashenglm")
    (folder / "__init__.py").unlink()
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=False)
    processor = processing.MiDashengLMProcessor(extractor, tokenizer, chat_template=template)
    processor.save_pretrained(folder)
    # What the real repository's processor config says: where AutoProcessor finds the class.
    for name in ("processor_config.json", "preprocessor_config.json"):
        file = folder / name
        data = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
        data["processor_class"] = "MiDashengLMProcessor"
        data["auto_map"] = {"AutoProcessor": "processing_midashenglm.MiDashengLMProcessor"}
        file.write_text(json.dumps(data), encoding="utf-8")
    return folder


# -- CED (mispeech/ced-*) -------------------------------------------------------------------
# A stand-in for CED's hub code (the `ced_model` folder its checkpoints ship as remote code),
# written from the upstream contract the service relies on:
# - the configuration replaces `id2label` at load time, when there are 527 outputs, with the
#   labels of a `class_labels_indices.csv` fetched through `cached_file` (upstream: from a
#   hub repository), keeping each name only up to its first comma;
# - the feature extractor is torchaudio's MelSpectrogram then AmplitudeToDB(top_db=120) on
#   the stacked batch, whose floor is the loudest value of the whole batch minus 120 dB;
# - the head applies the sigmoid itself for the `mean`, `token` and `dm` poolings and returns
#   raw logits only for `logit`; outputs come back as `logits` of a SequenceClassifierOutput.

_CED_CONFIG = """
from transformers import PretrainedConfig
from transformers.utils.hub import cached_file


# Upstream names a hub repository here; the stand-in names the folder it was saved in.
DEFAULT_LABEL_REPO = "@LABEL_REPO@"


class CedConfig(PretrainedConfig):
    model_type = "ced"

    def __init__(self, embed_dim=32, depth=1, num_heads=2, outputdim=527, pooling="mean",
                 n_mels=64, target_length=100, patch_size=16, patch_stride=16, mlp_ratio=4.0,
                 label_repo=DEFAULT_LABEL_REPO, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.depth, self.num_heads = embed_dim, depth, num_heads
        self.mlp_ratio = mlp_ratio
        self.outputdim, self.pooling, self.n_mels = outputdim, pooling, n_mels
        self.target_length, self.patch_size, self.patch_stride = target_length, patch_size, patch_stride
        self.label_repo = label_repo
        if self.outputdim == 527:
            with open(cached_file(label_repo, "class_labels_indices.csv"), "r") as f:
                self.id2label = {
                    int(line.split(",", maxsplit=3)[0]): line.split(",", maxsplit=3)[2].replace('"', "").strip("\\n")
                    for line in f.readlines()[1:]
                }
            self.label2id = {v: k for k, v in self.id2label.items()}
"""

_CED_EXTRACTOR = """
import numpy as np
import torch
import torchaudio.transforms as audio_transforms
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature


class CedFeatureExtractor(SequenceFeatureExtractor):
    def __init__(self, f_min=0, sampling_rate=16000, win_size=512, center=True, n_fft=512,
                 f_max=None, hop_size=160, feature_size=64, padding_value=0.0, **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate,
                         padding_value=padding_value, **kwargs)
        self.f_min, self.win_size, self.center = f_min, win_size, center
        self.n_fft, self.f_max, self.hop_size = n_fft, f_max, hop_size
        self.model_input_names = ["input_values"]

    def __call__(self, x, sampling_rate=None, return_tensors="pt"):
        if return_tensors != "pt":
            raise NotImplementedError("Only return_tensors='pt' is currently supported.")
        mel = audio_transforms.MelSpectrogram(
            f_min=self.f_min, sample_rate=sampling_rate or self.sampling_rate,
            win_length=self.win_size, center=self.center, n_fft=self.n_fft, f_max=self.f_max,
            hop_length=self.hop_size, n_mels=self.feature_size)
        to_db = audio_transforms.AmplitudeToDB(top_db=120)
        if isinstance(x, (list, tuple)):
            longest = max(item.shape[0] for item in x)
            x = torch.stack([torch.from_numpy(np.pad(np.asarray(item), (0, longest - item.shape[0])))
                             for item in x])
        elif isinstance(x, np.ndarray):
            x = torch.from_numpy(x[np.newaxis, :] if x.ndim == 1 else x)
        return BatchFeature({"input_values": to_db(mel(x.float()))})
"""

_CED_MODEL = """
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.modeling_utils import PreTrainedModel

from .configuration_ced import CedConfig


class CedPreTrainedModel(PreTrainedModel):
    config_class = CedConfig
    base_model_prefix = "ced"
    main_input_name = "input_values"


class CedModel(CedPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.init_bn = nn.BatchNorm2d(config.n_mels, momentum=0.01)
        self.proj = nn.Conv2d(1, config.embed_dim, kernel_size=tuple(config.patch_size)
                              if isinstance(config.patch_size, list) else config.patch_size,
                              stride=tuple(config.patch_stride)
                              if isinstance(config.patch_stride, list) else config.patch_stride)
        layer = nn.TransformerEncoderLayer(config.embed_dim, config.num_heads,
                                           int(config.embed_dim * config.mlp_ratio),
                                           batch_first=True, norm_first=True,
                                           activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, config.depth)
        self.norm = nn.LayerNorm(config.embed_dim, eps=1e-6)
        self.post_init()

    def forward(self, input_values):
        x = torch.unsqueeze(input_values, 1)
        x = torch.permute(x, (0, 2, 1, 3))
        x = self.init_bn(x)
        x = torch.permute(x, (0, 2, 1, 3))
        x = x[..., : self.config.target_length]
        x = self.proj(x)
        x = torch.permute(torch.flatten(x, 2, 3), (0, 2, 1))
        return SequenceClassifierOutput(logits=self.norm(self.blocks(x)))


class CedForAudioClassification(CedPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.encoder = CedModel(config)
        self.outputlayer = nn.Sequential(nn.LayerNorm(config.embed_dim),
                                         nn.Linear(config.embed_dim, config.outputdim))
        self.post_init()

    def forward_head(self, x):
        if self.config.pooling == "token":
            return self.outputlayer(x[:, 0]).sigmoid()
        if self.config.pooling == "mean":
            return self.outputlayer(x.mean(1)).sigmoid()
        if self.config.pooling == "logit":
            return self.outputlayer(x.mean(1))
        if self.config.pooling == "dm":
            return self.outputlayer(x).sigmoid().mean(1)
        return x.mean(1)

    def forward(self, input_values, labels=None):
        hidden = self.encoder(input_values).logits
        return SequenceClassifierOutput(logits=self.forward_head(hidden), hidden_states=hidden)
"""


def build_tiny_ced(
    path: Path | str,
    *,
    pooling: str = "mean",
    embed_dim: int = 32,
    depth: int = 1,
    num_heads: int = 2,
    patch: tuple[int, int] = (16, 16),
    target_length: int = 100,
    biases: Mapping[str, float] | None = None,
    seed: int = 0,
) -> Path:
    """Save a random CED-shaped audio tagger with its remote code, as a hub checkpoint is.

    The defaults are tiny; `embed_dim`, `depth`, `num_heads` and `patch` at CED's released
    sizes (tiny 192/12/3, mini 256/12/4, small 384/12/6, base 768/12/12, 16x16 patches;
    Dasheng base 768/12/12 with 64x4 patches) give the real compute for benchmarks.
    Its 527 labels come from AudioSet's label file (the copy the service ships) through
    `cached_file`, cut at the first comma as upstream does. The head's weights are small and
    its bias is -6, so every label stays near 0 unless `biases` (by full AudioSet name) lifts
    it; a second sigmoid on top of the head's would put every score at 0.5.
    """
    import shutil

    import torch

    from model_service import categories

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration_ced.py").write_text(
        _CED_CONFIG.replace("@LABEL_REPO@", str(folder.resolve())), encoding="utf-8"
    )
    (folder / "feature_extraction_ced.py").write_text(_CED_EXTRACTOR, encoding="utf-8")
    (folder / "modeling_ced.py").write_text(_CED_MODEL, encoding="utf-8")
    shipped = Path(categories.__file__).parent / "data" / "audioset_class_labels_indices.csv"
    shutil.copy(shipped, folder / "class_labels_indices.csv")

    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    config_cls = get_class_from_dynamic_module("configuration_ced.CedConfig", str(folder))
    model_cls = get_class_from_dynamic_module("modeling_ced.CedForAudioClassification", str(folder))
    extractor_cls = get_class_from_dynamic_module(
        "feature_extraction_ced.CedFeatureExtractor", str(folder)
    )
    torch.manual_seed(seed)
    config = config_cls(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        pooling=pooling,
        target_length=target_length,
        patch_size=list(patch),
        patch_stride=list(patch),
    )
    model = model_cls(config).eval()
    names = categories.audioset_labels()
    with torch.no_grad():
        head = model.outputlayer[1]
        head.weight.mul_(0.05)
        head.bias.fill_(-6.0)
        for name, bias in (biases or {}).items():
            head.bias[names.index(name)] = bias
    config.auto_map = {
        "AutoConfig": "configuration_ced.CedConfig",
        "AutoModelForAudioClassification": "modeling_ced.CedForAudioClassification",
        "AutoFeatureExtractor": "feature_extraction_ced.CedFeatureExtractor",
    }
    model.save_pretrained(folder)
    extractor = extractor_cls(f_max=8000)
    extractor.auto_map = {"AutoFeatureExtractor": "feature_extraction_ced.CedFeatureExtractor"}
    extractor.save_pretrained(folder)
    return folder
