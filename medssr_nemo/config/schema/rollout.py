"""``rollout``: which engine samples, and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict

from medssr_nemo.config.schema.common import check_range


@dataclass
class RolloutConfig:
    engine: str = "inprocess"           # a registered rollout_engine or a dotted path
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0                      # 0 = off
    max_new_tokens: int = 256
    batch_size: int = 64                # sequences per engine call
    options: Dict[str, Any] = field(default_factory=dict)  # engine-specific keys

    def __post_init__(self) -> None:
        check_range("rollout.temperature", self.temperature, 0.0)
        check_range("rollout.top_p", self.top_p, 0.0, 1.0, low_open=True)
        check_range("rollout.top_k", self.top_k, 0)
        check_range("rollout.max_new_tokens", self.max_new_tokens, 1)
        check_range("rollout.batch_size", self.batch_size, 1)
