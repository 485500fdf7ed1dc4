"""Finding a transformers model: a hub id or a local folder, and its config.

Shared by every transformers backend (taggers, the audio LM), so each refuses a missing
folder, a folder that is no model, and remote code it was not allowed to run in the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def is_local_path(spec: str) -> bool:
    """Whether `spec` names a folder on this machine rather than a hub id."""
    return spec.startswith(("/", "./", "../", "~")) or Path(spec).expanduser().exists()


def check_model_folder(spec: str, error: Callable[[str], Exception]) -> None:
    """A local `spec` must be a folder with a config.json; `error(message)` otherwise."""
    if not is_local_path(spec):
        return
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise error(f"model folder {spec} does not exist")
    if not (folder / "config.json").is_file():
        raise error(f"{spec} is not a transformers model folder: it has no config.json")


def read_config(spec: str, *, trust_remote_code: bool, error: Callable[[str], Exception]) -> Any:
    """The model's transformers config; `error(message)` says why it cannot be read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec, trust_remote_code=trust_remote_code)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise error(
                f"{spec} runs its own model code; start with --trust-remote-code if you trust it"
            ) from err
        raise error(f"cannot read the config of {spec}: {err}") from err
    except Exception as err:
        raise error(f"cannot load {spec}: {err}") from err
