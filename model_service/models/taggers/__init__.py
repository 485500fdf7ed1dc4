"""Taggers (continuous sound event detection): the embedded default, transformers models
(CED, Dasheng, AST), and the wrappers the service puts around a model (activity gating, the
alarm pattern detectors beside it). `load_tagger` picks and assembles them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model_service.models.taggers.base import (
    SAMPLE_RATE,
    Detection,
    Tagger,
    TaggerInfo,
    TaggerLoadError,
    Window,
    check_quiet,
)
from model_service.models.taggers.builtin import BuiltinTagger
from model_service.models.taggers.combined import CombinedTagger
from model_service.models.taggers.gated import GatedTagger
from model_service.models.taggers.hf import TransformersTagger

__all__ = [
    "SAMPLE_RATE",
    "Detection",
    "Tagger",
    "TaggerInfo",
    "TaggerLoadError",
    "Window",
    "check_quiet",
    "load_tagger",
]


def load_tagger(
    spec: str,
    *,
    device: str = "auto",
    trust_remote_code: bool = False,
    options: dict[str, Any] | None = None,
    quiet_thresholds: Mapping[str, float] | None = None,
    alarm_patterns: bool = False,
    activity_gate: bool = False,
) -> Tagger:
    """Load the tagger named by `spec`: "builtin", or a transformers hub id / local folder.

    With `quiet_thresholds` a model must stay under them on silence and quiet noise
    (`check_quiet`); with `activity_gate` a model only hears windows with something new
    (`gated.GatedTagger`); with `alarm_patterns` the embedded smoke and CO alarm pattern
    detectors run beside it, on every window (`combined.CombinedTagger`). The service does
    all three.
    """
    if spec == "builtin":
        return BuiltinTagger(**(options or {}))

    tagger: Tagger = TransformersTagger(spec, device=device, trust_remote_code=trust_remote_code)
    try:
        if quiet_thresholds is not None:
            check_quiet(tagger, quiet_thresholds)
    except TaggerLoadError:
        tagger.close()
        raise
    if activity_gate:
        tagger = GatedTagger(tagger)
    if alarm_patterns:
        tagger = CombinedTagger(tagger)
    return tagger
