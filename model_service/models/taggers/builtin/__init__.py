"""The embedded default tagger: alarm, beep and bang detectors from signal processing, plus
silero-vad for speech. No downloaded weights (silero-vad's model ships inside its package).

`features` turns audio into frame features, `patterns` and `alarms` find smoke and CO alarms
and appliance beeps in them, `bang` finds bangs, `speech` runs silero-vad, and `tagger` ties
them together with the per-stream cache.
"""

from model_service.models.taggers.builtin.tagger import LABELS, BuiltinTagger

__all__ = ["LABELS", "BuiltinTagger"]
