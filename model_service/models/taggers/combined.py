"""A neural tagger with the embedded smoke and CO alarm pattern detectors beside it.

A 1 s window classifier hears that something beeps; the standard alarm patterns (T3 for
smoke: three 0.5 s pulses, then 1.5 s quiet; T4 for carbon monoxide: four 0.1 s pulses, then
5 s quiet) are a matter of timing over several seconds, which the embedded detectors match
directly, cheaply and with measured precision. So adding a model never makes alarm detection
worse: `smoke_alarm` scores the higher of the two, and `co_alarm` (which AudioSet has no label
for) comes from the pattern detector alone. Every other category is the model's.
"""

from __future__ import annotations

from collections.abc import Sequence

from model_service.categories import CATEGORY_IDS, GESTURE_IDS
from model_service.models.taggers.base import Detection, Tagger, TaggerInfo, Window
from model_service.models.taggers.builtin import BuiltinTagger

# What the embedded detectors add to a neural tagger: the alarm patterns (AudioSet has no CO
# alarm, and a T3 pattern is surer than a label) and the sound gestures (no AudioSet label).
PATTERN_CATEGORIES = ("smoke_alarm", "co_alarm", *GESTURE_IDS)


class CombinedTagger:
    """`model` for every category, the alarm pattern detectors for smoke and CO alarms too, and
    the embedded gesture detector."""

    def __init__(self, model: Tagger, patterns: BuiltinTagger | None = None) -> None:
        """Wrap `model`; `patterns` defaults to the embedded detectors without speech."""
        self.model = model
        self.patterns = patterns if patterns is not None else BuiltinTagger(speech=False)
        base = model.info
        cats = set(base.categories) | set(PATTERN_CATEGORIES)
        labels = dict(base.labels)
        for cid in PATTERN_CATEGORIES:
            labels[cid] = [*labels.get(cid, []), *self.patterns.info.labels.get(cid, [])]
        self.info = TaggerInfo(
            name=base.name,
            backend=base.backend,
            categories=tuple(c for c in CATEGORY_IDS if c in cats),
            # The patterns need their whole window; the model keeps the newest part of it.
            window_seconds=max(base.window_seconds, self.patterns.info.window_seconds),
            hop_seconds=min(base.hop_seconds, self.patterns.info.hop_seconds),
            device=base.device,
            labels=labels,
            extra={**base.extra, "alarm_patterns": list(PATTERN_CATEGORIES)},
        )

    def predict(self, windows: Sequence[Window]) -> list[dict[str, Detection]]:
        """The model's detections, with the alarm patterns' where they score higher."""
        if not windows:
            return []
        found = self.model.predict(windows)
        patterns = self.patterns.predict(windows)
        for result, pattern in zip(found, patterns, strict=True):
            for cid in PATTERN_CATEGORIES:
                heard = pattern.get(cid)
                if heard is not None and (cid not in result or heard.score > result[cid].score):
                    result[cid] = heard
        return found

    def forget(self, stream: str) -> None:
        """Drop what the pattern detectors and the model (its gate) keep for a stream that ended."""
        self.patterns.forget(stream)
        forget = getattr(self.model, "forget", None)
        if forget is not None:
            forget(stream)

    def close(self) -> None:
        """Release both."""
        self.model.close()
        self.patterns.close()
