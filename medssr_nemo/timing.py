"""Named phase timers (rollout, reward, logprobs, update, ...): every step logs where time went."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        """The accumulated seconds per phase (as ``timing/<name>_s``), then reset."""
        out = {f"timing/{name}_s": value for name, value in self.seconds.items()}
        self.seconds.clear()
        return out
