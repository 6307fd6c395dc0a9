"""``answer``: how answer letters are read from model outputs, one setting shared by evaluation,
rewards and pseudo-labelling (``medssr_nemo.answers``; see ``docs/evaluation.md``).

Each of those stages may override it (``eval.answer_extraction``, ``reward.answer_extraction``,
``label.answer_extraction``; null = this setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

from medssr_nemo.config.schema.common import check_choice

EXTRACTION_MODES = ["paper", "lenient"]
Stage = Literal["eval", "reward", "label"]


@dataclass
class AnswerConfig:
    # paper: the rules of the paper's released evaluation script (default);
    # lenient: this project's earlier rule ((B), is: B, bare \boxed{B}, question's letters only)
    extraction: str = "paper"

    def __post_init__(self) -> None:
        check_choice("answer.extraction", self.extraction, EXTRACTION_MODES)


def check_stage_extraction(key: str, value: Optional[str]) -> None:
    if value is not None:
        check_choice(key, value, EXTRACTION_MODES)


def answer_extraction(cfg: Any, stage: Stage) -> str:
    """The extraction mode ``stage`` uses: its own override, else ``answer.extraction``."""
    own = getattr(getattr(cfg, stage), "answer_extraction", None)
    return own if own is not None else cfg.answer.extraction
