"""Learning-rate schedules: linear warm-up, then constant or cosine decay.

``lr_at(step)`` is a pure function of the number of optimiser steps already taken, so the
schedule's whole state is the step counter: resuming from a checkpoint restores it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class LRSchedule:
    """lr of update number ``step`` (0-based)::

        warm-up  (step < W):  lr * (step + 1) / W          (the first update already moves)
        constant:             lr
        cosine:               lr * (m + (1 - m) * 0.5 * (1 + cos(pi * p))),
                              p = min(1, (step - W) / max(1, total_steps - W)),  m = min_lr_ratio
    """

    base_lr: float
    schedule: str = "constant"
    warmup_steps: int = 0
    total_steps: int | None = None
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"policy.schedule={self.schedule!r} is not allowed; choose one of {list(SCHEDULES)}")
        if self.schedule == "cosine" and not self.total_steps:
            raise ValueError("policy.schedule='cosine' needs the run's total number of optimiser steps "
                             "(train.steps); none was given to the policy backend")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.base_lr
        assert self.total_steps is not None
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        m = self.min_lr_ratio
        return self.base_lr * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * progress)))
