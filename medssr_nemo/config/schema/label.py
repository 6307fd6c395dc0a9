"""``label``: offline pseudo-labelling by the policy's majority vote (``medssr label``).

Sampling knobs left null take the ``rollout`` section's values, so labelling samples like the
training rollouts unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from medssr_nemo.config.schema.answer import check_stage_extraction
from medssr_nemo.config.schema.common import ConfigValueError, check_choice, check_range

TIE_RULES = ["drop", "lowest_letter", "random"]
LOW_AGREEMENT_RULES = ["drop", "keep"]


@dataclass
class LabelConfig:
    input: Optional[str] = None         # question records to label (JSONL or Parquet)
    output_name: str = "pseudo_labels"  # <output_dir>/<output_name>.jsonl (+ .card.json, .partial.jsonl)
    num_samples: int = 8                # answers per question (the paper's n; 8 is our choice)
    temperature: Optional[float] = None     # null = rollout.temperature
    top_p: Optional[float] = None           # null = rollout.top_p
    top_k: Optional[int] = None             # null = rollout.top_k
    max_new_tokens: Optional[int] = None    # null = rollout.max_new_tokens
    recovery: bool = True               # constrained re-decode of samples with no answer (as evaluation)
    answer_extraction: Optional[str] = None   # paper | lenient; null = answer.extraction
    min_agreement: float = 0.5          # tau: top votes / samples needed for a confident label
    below_min_agreement: str = "drop"   # drop, or keep (the agreement is stored either way)
    tie_rule: str = "drop"              # drop | lowest_letter | random (seeded by seed + question id)
    limit: int = 0                      # label only the first N questions (0 = all)
    seed: int = 0                       # per-sample seeds derive from (seed, question id, sample)

    def __post_init__(self) -> None:
        check_range("label.num_samples", self.num_samples, 1)
        if self.temperature is not None:
            check_range("label.temperature", self.temperature, 0.0)
        if self.top_p is not None:
            check_range("label.top_p", self.top_p, 0.0, 1.0, low_open=True)
        if self.top_k is not None:
            check_range("label.top_k", self.top_k, 0)
        if self.max_new_tokens is not None:
            check_range("label.max_new_tokens", self.max_new_tokens, 1)
        check_stage_extraction("label.answer_extraction", self.answer_extraction)
        check_stage_extraction("label.answer_extraction", self.answer_extraction)
        check_range("label.min_agreement", self.min_agreement, 0.0, 1.0)
        check_choice("label.below_min_agreement", self.below_min_agreement, LOW_AGREEMENT_RULES)
        check_choice("label.tie_rule", self.tie_rule, TIE_RULES)
        check_range("label.limit", self.limit, 0)
        if not self.output_name or "/" in self.output_name:
            raise ConfigValueError(f"label.output_name={self.output_name!r} must be a plain file stem (no '/')")
