"""``pipeline``: ``medssr run``, the whole MedSSR recipe in one run directory.

Each stage trains with the shared ``grpo``/``policy``/``rollout``/``reward`` sections; only its
length (and, optionally, learning rate) is its own, so stage 1 and stage 2 differ in data and
reward source (the rows' label source), not in algorithm. The ablations of the paper are
settings here: ``stage1.enabled=false`` is plain GRPO on real data (the baseline),
``stage2.enabled=false`` stops after self-supervised training, ``kg_labels=gold`` trains on the
knowledge base's answer key instead of the vote for knowledge-generated questions, and
``alpha_sweep`` runs one pipeline per rare ratio plus a comparison report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from medssr_nemo.config.schema.common import ConfigValueError, check_choice, check_range

KG_LABEL_SOURCES = ["pseudo", "gold"]


@dataclass
class StageConfig:
    enabled: bool = True
    steps: int = 100                    # GRPO rollout steps of this stage (train.steps is `medssr train`'s)
    lr: Optional[float] = None          # null = policy.lr

    def check(self, name: str) -> None:
        check_range(f"pipeline.{name}.steps", self.steps, 1)
        if self.lr is not None:
            check_range(f"pipeline.{name}.lr", self.lr, 0.0, low_open=True)


@dataclass
class PipelineConfig:
    stage1: StageConfig = field(default_factory=StageConfig)   # self-supervised: pseudo-labelled synthetic
    stage2: StageConfig = field(default_factory=StageConfig)   # supervised: gold-labelled real questions
    kg_labels: str = "pseudo"           # knowledge-generated questions train on: pseudo (the vote) | gold (the KB key)
    alpha_sweep: List[float] = field(default_factory=list)     # non-empty: one pipeline per synthesis.alpha
    report_figures: bool = True         # PNG figures next to report.md

    def __post_init__(self) -> None:
        self.stage1.check("stage1")
        self.stage2.check("stage2")
        check_choice("pipeline.kg_labels", self.kg_labels, KG_LABEL_SOURCES)
        for i, alpha in enumerate(self.alpha_sweep):
            check_range(f"pipeline.alpha_sweep[{i}]", alpha, 0.0, 1.0)
        if len(set(self.alpha_sweep)) != len(self.alpha_sweep):
            raise ConfigValueError(f"pipeline.alpha_sweep={list(self.alpha_sweep)} repeats a value")
        if not (self.stage1.enabled or self.stage2.enabled):
            raise ConfigValueError("pipeline.stage1.enabled and pipeline.stage2.enabled are both false: "
                                   "nothing would be trained; enable at least one stage")
