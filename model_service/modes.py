"""Modes: what a source listens for depends on whether anyone is home.

`home` detects as configured. `away` listens harder for the sounds of an intruder and marks
their events as intrusions. `night` keeps the safety alarms and the baby monitor as they are
and makes everything else one step less sensitive, so a barking dog or a clap in a dream does
not wake the house.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Mode(StrEnum):
    """A source's mode. Members are strings, so they go on the wire as is."""

    HOME = "home"
    AWAY = "away"
    NIGHT = "night"

    @classmethod
    def parse(cls, value: object) -> Mode:
        """The member `value` names; ValueError with the choices otherwise."""
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError(f"mode must be {', '.join(MODE_CHOICES[:-1])} or {MODE_CHOICES[-1]}")


MODE_CHOICES: tuple[str, ...] = tuple(m.value for m in Mode)

# The sounds an intruder makes. Away, they are one sensitivity step more sensitive and
# their events are intrusions.
INTRUSION_CATEGORIES: frozenset[str] = frozenset(
    {"glass_break", "knock", "loud_noise", "unusual_sound", "speech", "scream"}
)
# What night leaves as it is: the safety alarms, the baby monitor and breaking glass.
NIGHT_KEEPS: frozenset[str] = frozenset(
    {"smoke_alarm", "co_alarm", "fire_alarm", "siren", "baby_cry", "glass_break"}
)
STEP = 0.15  # one sensitivity step (sensitivity.THRESHOLD_SHIFT)

_AWAY: Mapping[str, float] = dict.fromkeys(INTRUSION_CATEGORIES, -STEP)


def mode_shift(mode: Mode, category: str) -> float:
    """How much the mode moves a category's thresholds (negative: more sensitive)."""
    if mode is Mode.AWAY:
        return _AWAY.get(category, 0.0)
    if mode is Mode.NIGHT and category not in NIGHT_KEEPS:
        return STEP
    return 0.0


def is_intrusion(mode: str, category: str) -> bool:
    """An event heard in `mode` is an intrusion: away, and a sound an intruder makes."""
    return mode == Mode.AWAY and category in INTRUSION_CATEGORIES
