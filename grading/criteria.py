"""A rubric criterion's score scale, with no heavy imports: models, forms and views use it
in every process, while the learned scorer (``grading.scoring``, scikit-learn and SciPy)
loads only where essays are scored."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Criterion:
    """One rubric criterion: scores run from ``min`` to ``max`` in steps of ``step``."""

    name: str
    min: float
    max: float
    step: float

    def __post_init__(self) -> None:
        if not self.step > 0 or not self.max > self.min:
            raise ValueError(f"Criterion {self.name!r} needs min < max and a positive step.")
        levels = (self.max - self.min) / self.step
        if abs(levels - round(levels)) > 1e-6:
            raise ValueError(f"Criterion {self.name!r}: (max - min) is not a multiple of step.")

    @property
    def level_count(self) -> int:
        return int(round((self.max - self.min) / self.step)) + 1

    def to_levels(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """Scores as integer level indices 0..level_count-1 (rounded, clipped)."""
        import numpy as np  # only where scores are turned into levels: not at start-up

        raw = (np.asarray(scores, dtype=float) - self.min) / self.step
        return np.clip(np.rint(raw), 0, self.level_count - 1).astype(int)

    def from_levels(self, levels: Sequence[int] | np.ndarray) -> np.ndarray:
        import numpy as np

        return self.min + np.asarray(levels, dtype=float) * self.step

    def is_on_scale(self, score: float) -> bool:
        if not math.isfinite(score) or not self.min - 1e-9 <= score <= self.max + 1e-9:
            return False
        position = (score - self.min) / self.step
        return abs(position - round(position)) < 1e-6
