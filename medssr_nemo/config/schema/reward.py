"""``reward``: which reward sources score a row, chosen by the row's label source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from medssr_nemo.config.schema.answer import check_stage_extraction


@dataclass
class RewardTermConfig:
    name: str = "gold"                  # a registered reward_source or a dotted path
    weight: float = 1.0
    options: Dict[str, Any] = field(default_factory=dict)


def _default_sources() -> Dict[str, List[RewardTermConfig]]:
    return {
        "gold": [RewardTermConfig("gold", 1.0)],
        "pseudo": [RewardTermConfig("pseudo_label", 1.0)],
    }


@dataclass
class RewardConfig:
    # label source of a row (gold | pseudo) -> weighted terms summed into its reward
    sources: Dict[str, List[RewardTermConfig]] = field(default_factory=_default_sources)
    answer_extraction: Optional[str] = None   # how training reads answers: paper | lenient; null = answer.extraction

    def __post_init__(self) -> None:
        check_stage_extraction("reward.answer_extraction", self.answer_extraction)
        unknown = sorted(set(self.sources) - {"gold", "pseudo"})
        if unknown:
            raise ValueError(f"reward.sources has unknown label source(s) {unknown}; allowed: gold, pseudo")
        for source, terms in self.sources.items():
            if not terms:
                raise ValueError(f"reward.sources.{source} is empty; give at least one reward term")
