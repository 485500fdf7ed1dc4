"""Named array types: what a function takes and returns says which kind of array it is."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

Samples: TypeAlias = NDArray[np.float32]
"""Mono audio as float32 in [-1, 1] (16 kHz unless a `rate` says otherwise)."""

Array: TypeAlias = NDArray[Any]
"""Any other numeric array: frame features, scores, masks, indices."""
