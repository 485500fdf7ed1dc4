"""Service configuration: defaults, a YAML/TOML config file, the environment and CLI flags."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import ipaddress
import os
from pathlib import Path
import tomllib
from typing import Any

import yaml

from model_service.modes import Mode
from model_service.sensitivity import Sensitivity

DEFAULT_SCHEMES: tuple[str, ...] = ("rtsp", "rtsps", "http", "https")


class ConfigError(ValueError):
    """The configuration is invalid; the message says what to change."""


def default_data_dir() -> Path:
    """Where state lives unless told otherwise (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "midasheng"


# A token guessable by trying is no protection on a network: 16 characters of hex is 64 bits.
MIN_NETWORK_TOKEN = 16


@dataclass(kw_only=True)
class Config:
    """Everything the service can be told, with the defaults a first-time user needs."""

    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = field(default_factory=default_data_dir)
    token: str | None = None
    device: str = "auto"
    tagger: str = "builtin"
    trust_remote_code: bool = False
    lm: str | None = None
    lm_model: str | None = None
    lm_family: str | None = None
    lm_api_key: str | None = None
    lm_max_new_tokens: int = 128
    lm_timeout: float = 120.0
    # Generation settings over the model's own (temperature, top_p, do_sample, ...).
    lm_generation: dict[str, Any] = field(default_factory=dict)
    asr: str | None = "pocketsphinx"
    # An open-vocabulary recognizer ("lm" or a Whisper id) for speech the phrase grammar rejects.
    asr_fallback: str | None = None
    # An OpenAI-compatible transcription server's model and key (`--asr openai:<base url>`).
    asr_model: str | None = None
    asr_api_key: str | None = None
    # Text to speech: "openai:<base url>" (vLLM-Omni with MiMo-Audio), "none", or None/"lm":
    # the audio LM when it speaks.
    tts: str | None = None
    tts_model: str | None = None
    tts_api_key: str | None = None
    max_upload_mb: float = 50.0
    debug: bool = False
    zeroconf: bool = True
    # A model tagger skips windows of unchanged background (taggers/gated.py).
    activity_gate: bool = True
    wyoming_port: int | None = None
    # Dynamic batching (per model)
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 4096
    torch_threads: int | None = None
    # Detection
    sensitivity: Sensitivity = Sensitivity.MEDIUM
    # The mode of sources that have none of their own (modes.py).
    mode: Mode = Mode.HOME
    gate_dbfs: float = -70.0
    # Live sources
    sources: list[dict[str, Any]] = field(default_factory=list)
    allowed_schemes: list[str] = field(default_factory=lambda: list(DEFAULT_SCHEMES))
    # Names (besides loopback addresses and the bound host) clients may call the service by.
    allowed_hosts: list[str] = field(default_factory=list)
    # Hosts that sources made through the API may name (names, `*.suffix`, addresses,
    # networks). None: any host the service can reach, its own loopback included.
    source_hosts: list[str] | None = None
    clip_retention_hours: float = 72.0
    clip_max_mb: float = 500.0
    ffmpeg: str = "ffmpeg"
    # Uploads (classify, transcribe, describe, ask) in progress at once; more are refused with
    # 503 before their body is read. 0: no limit (uploads wait for the model queue).
    max_pending_uploads: int = 16
    # Open HTTP/WebSocket connections at once (also bounded by the descriptor limit).
    max_connections: int = 512
    # Free space the data dir's disk keeps: below it, the oldest clips go first.
    min_free_mb: float = 256.0

    @property
    def max_upload_bytes(self) -> int:
        """Upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    def validate(self) -> None:
        """Refuse settings that are unsafe or cannot work, with a message that says why."""
        if self.token is not None and self.token != self.token.strip():
            raise ConfigError(
                "the token starts or ends with whitespace, which no client can send back; remove it"
            )
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: anyone on the network "
                "could use the service. Set --token (or MIDASHENG_TOKEN, or token: in the "
                "config file), or bind to 127.0.0.1"
            )
        if not is_loopback(self.host) and len(self.token or "") < MIN_NETWORK_TOKEN:
            raise ConfigError(
                f"refusing to listen on {self.host} with a token of {len(self.token or '')} "
                f"characters: on a network it needs at least {MIN_NETWORK_TOKEN} (for "
                'example --token "$(openssl rand -hex 16)")'
            )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], not {self.device!r}")
        try:
            self.sensitivity = Sensitivity.parse(self.sensitivity)
            self.mode = Mode.parse(self.mode)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        if not 0 < self.max_upload_mb <= 4096:
            raise ConfigError("--max-upload-mb must be between 0 and 4096")
        if not 0 < self.port < 65536:
            raise ConfigError(f"invalid port {self.port}")
        if not 8 <= self.max_connections <= 1_000_000:
            raise ConfigError("max_connections must be between 8 and 1000000")
        if self.max_pending_uploads < 0:
            raise ConfigError("max_pending_uploads must be 0 (no limit) or more")
        if self.min_free_mb < 0:
            raise ConfigError("min_free_mb must be 0 or more")
        if self.max_batch < 1 or self.max_queue < self.max_batch:
            raise ConfigError("max_batch must be >= 1 and max_queue >= max_batch")


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_FIELDS = {f.name for f in fields(Config)}


def load_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML config file into a flat dict of `Config` field names."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"config file {path} is not valid: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    flat = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(flat) - _FIELDS)
    if unknown:
        raise ConfigError(f"unknown setting(s) in {path}: {', '.join(unknown)}")
    return flat


def build_config(
    file_values: dict[str, Any] | None = None,
    cli_values: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Merge defaults < config file < environment < CLI flags (None means "not given")."""
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = dict(file_values or {})
    if env.get("MIDASHENG_TOKEN"):
        merged["token"] = env["MIDASHENG_TOKEN"]
    merged.update({k: v for k, v in (cli_values or {}).items() if v is not None and k in _FIELDS})
    if "data_dir" in merged:
        merged["data_dir"] = Path(merged["data_dir"]).expanduser()
    for key in ("sources", "allowed_schemes", "allowed_hosts", "source_hosts"):
        if key in merged and merged[key] is not None and not isinstance(merged[key], list):
            raise ConfigError(f"{key} must be a list")
    if "lm_generation" in merged and not isinstance(merged["lm_generation"], dict):
        raise ConfigError("lm_generation must be a mapping of generation settings")
    try:
        config = Config(**merged)
    except TypeError as err:
        raise ConfigError(str(err)) from err
    config.validate()
    return config
