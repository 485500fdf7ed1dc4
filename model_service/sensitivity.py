"""Sensitivity: the one user-facing knob of detection, as a service default and per source."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Sensitivity(StrEnum):
    """How readily sensors switch on. Members are strings, so they go on the wire as is."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @classmethod
    def parse(cls, value: object) -> Sensitivity:
        """The member `value` names; ValueError with the choices otherwise."""
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError(f"sensitivity must be {', '.join(CHOICES[:-1])} or {CHOICES[-1]}")


CHOICES: tuple[str, ...] = tuple(s.value for s in Sensitivity)

# Sensitivity shifts every threshold by the same amount ("medium" is the calibrated default).
THRESHOLD_SHIFT: Mapping[Sensitivity, float] = {
    Sensitivity.LOW: 0.15,
    Sensitivity.MEDIUM: 0.0,
    Sensitivity.HIGH: -0.15,
}
